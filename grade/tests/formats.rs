//! The output formats for the platforms instructors use, on real stage-1 results (the full tree:
//! full marks; a handout with stage 1's exercise stubbed: every point lost) and on a made-up
//! report with a build error, no KVM, and output full of markup and control characters:
//! Gradescope's results.json and GitHub Classroom's result validate against the schemas
//! written from their specifications, JUnit XML parses back with the elements and attributes
//! CI systems read.

mod common;

use base64::Engine as _;
use common::assert_valid;
use grade::grading::{grade, CheckRow, GradeOptions, Points, Report, StageResult, StageStatus, Status};
use grade::{classroom, gradescope, junit, tree};
use quick_xml::events::Event;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The full tree's stage 1 and a stubbed handout's, graded once for all the tests here, in the
/// target directories grade_stage1.rs uses (one per tree), so that neither is built twice.
fn real_reports() -> [Report; 2] {
    static REPORTS: OnceLock<[Report; 2]> = OnceLock::new();
    REPORTS.get_or_init(grade_stage1_twice).clone()
}

fn grade_stage1_twice() -> [Report; 2] {
    checkpoints::require_kvm();
    let repo = checkpoints::repo_root();
    let full = grade(&GradeOptions {
        repo: repo.clone(),
        stages: vec![1],
        target_dir: tmp().join("grade-target"),
        checkpoints_dir: repo.join("tests/checkpoints"),
        stop_at_first_failure: false,
        progress: false,
    });
    let handout = tmp().join("handout-stage1");
    tree::write_handout(&repo, &handout, &["stage1-exit-handling".to_string()]).unwrap();
    let stubbed = grade(&GradeOptions {
        repo: handout.clone(),
        stages: vec![1],
        target_dir: tmp().join("grade-handout-target"),
        checkpoints_dir: handout.join("tests/checkpoints"),
        stop_at_first_failure: false,
        progress: false,
    });
    assert_eq!((full.points.earned, full.points.possible), (15, 15));
    assert_eq!((stubbed.points.earned, stubbed.points.possible), (0, 15));
    [full, stubbed]
}

fn row(
    stage: u32,
    checkpoint: &str,
    check: &str,
    status: Status,
    points: (u32, u32),
    message: &str,
    excerpt: &str,
) -> CheckRow {
    CheckRow {
        stage,
        checkpoint: checkpoint.into(),
        check: check.into(),
        status,
        points: Points { earned: points.0, possible: points.1 },
        message: message.into(),
        expected: "(?m)^<READY> & \"done\"$".into(),
        absent: false,
        output_excerpt: excerpt.into(),
        seconds: 1.25,
    }
}

/// Stage 2 does not build (its compiler errors hold `<`, `&`, quotes); stage 4 ran on a machine
/// without KVM; stage 5's run printed colours and a NUL; one check of it passed.
fn made_up_report() -> Report {
    let build = "error[E0308]: mismatched types\n --> src/main.rs:2:23\n  |\n2 |     let answer: u32 = \"forty-two\";\n  |                 ---   ^^^^^^^^^^^ expected `u32`, found `&str`";
    let kvm = "needs KVM, and /nonexistent cannot be opened (No such file or directory (os error 2)): grade on a Linux machine with KVM";
    let stages = vec![
        (
            2,
            StageStatus::BuildFailed,
            vec![row(2, "regions", "maps RAM", Status::Error, (0, 3), "`cargo build -p stage02 --bins` failed", build)],
        ),
        (4, StageStatus::Graded, vec![row(4, "boots", "reaches init", Status::Error, (0, 5), kvm, "")]),
        (
            5,
            StageStatus::Graded,
            vec![
                row(5, "shell", "echo works", Status::Pass, (2, 2), "", ""),
                row(
                    5,
                    "shell",
                    "exit code",
                    Status::Fail,
                    (0, 0),
                    "exit code 101, expected 0",
                    "\x1b[31mred\x1b[0m\0 <tag> & 'quote'",
                ),
            ],
        ),
    ];
    let mut report = Report { repo: "/tmp/ada".into(), points: Points::default(), seconds: 3.5, stages: Vec::new() };
    for (stage, status, checks) in stages {
        let mut points = Points::default();
        for check in &checks {
            points += check.points;
        }
        report.points += points;
        report.stages.push(StageResult { stage, status, message: "why".into(), points, build_seconds: 0.5, checks });
    }
    report
}

fn all_reports() -> Vec<Report> {
    let mut reports = real_reports().to_vec();
    reports.push(made_up_report());
    reports
}

#[test]
fn gradescope_results_have_the_published_shape() {
    for report in all_reports() {
        let text = gradescope::results_json(&report);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_valid("gradescope-results.schema.json", &value);
        let tests = value["tests"].as_array().unwrap();
        let rows: Vec<&CheckRow> = report.stages.iter().flat_map(|s| &s.checks).collect();
        assert_eq!(tests.len(), rows.len(), "one test per check");
        let mut numbers = Vec::new();
        for (test, row) in tests.iter().zip(&rows) {
            for field in ["name", "number", "score", "max_score", "status", "output", "visibility"] {
                assert!(!test[field].is_null(), "{field} missing in {test}");
            }
            assert_eq!(test["score"], row.points.earned);
            assert_eq!(test["max_score"], row.points.possible);
            assert_eq!(test["status"], if row.status == Status::Pass { "passed" } else { "failed" });
            let output = test["output"].as_str().unwrap();
            if row.status == Status::Pass {
                assert_eq!(output, "");
            } else {
                assert!(output.contains(&row.message), "{output}");
                for line in row.output_excerpt.lines() {
                    assert!(output.contains(line), "the output excerpt is in the test's output: {output}");
                }
            }
            numbers.push(test["number"].as_str().unwrap().to_string());
        }
        numbers.dedup();
        assert_eq!(numbers.len(), tests.len(), "numbers are unique");
        assert_eq!(value["score"], report.points.earned);
        let summary = value["output"].as_str().unwrap();
        assert!(
            summary.ends_with(&format!("Score: {}/{}\n", report.points.earned, report.points.possible)),
            "{summary}"
        );
    }
    let [full, stubbed] = real_reports();
    let value: serde_json::Value = serde_json::from_str(&gradescope::results_json(&full)).unwrap();
    assert_eq!(value["tests"][0]["name"], "stage 1: hello / prints HELLO, WORLD!");
    assert_eq!(value["tests"][0]["number"], "1.1");
    let value: serde_json::Value = serde_json::from_str(&gradescope::results_json(&stubbed)).unwrap();
    let hello = value["tests"][0]["output"].as_str().unwrap();
    assert!(hello.contains("expected output matching /(?m)^HELLO, WORLD!$/"), "{hello}");
    assert!(hello.contains("stage 1 exercise stage1-exit-handling"), "the stub's message: {hello}");
    let value: serde_json::Value = serde_json::from_str(&gradescope::results_json(&made_up_report())).unwrap();
    let summary = value["output"].as_str().unwrap();
    assert!(summary.contains("1 checks could not run: each needs KVM, and /nonexistent cannot be opened"), "{summary}");
}

/// What the reporter action does with a result: decode, parse, and add the tests' scores up
/// (`NotifyClassroom`); what it prints for each test.
fn as_the_reporter_reads_it(encoded: &str) -> serde_json::Value {
    let json = base64::engine::general_purpose::STANDARD.decode(encoded).expect("standard base64");
    let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_valid("classroom-result.schema.json", &value);
    value
}

#[test]
fn the_classroom_result_is_what_the_reporter_reads() {
    for report in all_reports() {
        let value = as_the_reporter_reads_it(&classroom::encoded_result(&report));
        let tests = value["tests"].as_array().unwrap();
        let total: u64 = tests.iter().map(|t| t["score"].as_u64().unwrap()).sum();
        assert_eq!(total, u64::from(report.points.earned), "Classroom gets the sum of the scores");
        assert_eq!(value["max_score"], report.points.possible);
        let expected = match (report.full_marks(), tests.iter().any(|t| t["status"] == "fail")) {
            (true, _) => "pass",
            (false, true) => "fail",
            (false, false) => "error",
        };
        assert_eq!(value["status"], expected);
        assert!(tests.iter().all(|t| t["line_no"] == 0), "no ' - line N' in the reporter's output");
    }
    let value = as_the_reporter_reads_it(&classroom::encoded_result(&made_up_report()));
    assert_eq!(value["status"], "fail");
    let kvm = &value["tests"][1];
    assert_eq!(kvm["status"], "error", "the reporter prints an error's message");
    assert!(kvm["message"].as_str().unwrap().contains("needs KVM"));
    assert_eq!(value["tests"][0]["test_code"], "output matches /(?m)^<READY> & \"done\"$/");
}

#[test]
fn a_huge_classroom_result_is_shortened_to_fit_in_an_environment_variable() {
    let mut report = made_up_report();
    let excerpt = "x".repeat(400) + "\n";
    for index in 0..200 {
        let check =
            row(6, "disk", &format!("check {index}"), Status::Fail, (0, 1), "expected output", &excerpt.repeat(20));
        report.points.possible += 1;
        report.stages[2].checks.push(check);
    }
    let untrimmed = classroom::result_json(&report, usize::MAX);
    assert!(untrimmed.len() > classroom::MAX_ENCODED, "the test needs a result too large: {}", untrimmed.len());
    let encoded = classroom::encoded_result(&report);
    assert!(encoded.len() <= classroom::MAX_ENCODED, "{} bytes", encoded.len());
    let value = as_the_reporter_reads_it(&encoded);
    assert_eq!(value["tests"].as_array().unwrap().len(), 204, "every test is still there");
    assert_eq!(value["max_score"], report.points.possible);
}

/// An element of the parsed JUnit document: its name, attributes, children and text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: HashMap<String, String>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    fn attribute(&self, name: &str) -> &str {
        self.attributes.get(name).unwrap_or_else(|| panic!("<{}> has no {name}: {:?}", self.name, self.attributes))
    }

    fn property(&self, name: &str) -> &str {
        let properties = &self.all("properties")[0];
        properties.all("property").into_iter().find(|p| p.attribute("name") == name).unwrap().attribute("value")
    }
}

fn parse_xml(text: &str) -> Element {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack = vec![Element::default()];
    let element = |e: &quick_xml::events::BytesStart| Element {
        name: e.name().as_ref().to_string(),
        attributes: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                let value = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).expect("escaped value");
                (a.key.as_ref().to_string(), value.into_owned())
            })
            .collect(),
        ..Default::default()
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(element(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack.last_mut().unwrap().text += &t.xml_content(quick_xml::XmlVersion::Implicit1_0),
            Event::GeneralRef(r) => {
                let name = r.xml_content(quick_xml::XmlVersion::Implicit1_0);
                let text = match name.as_ref() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    _ => r.resolve_char_ref().unwrap().map(String::from).unwrap_or_default(),
                };
                stack.last_mut().unwrap().text += &text;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "every element closes");
    stack.pop().unwrap().children.pop().expect("a root element")
}

#[test]
fn junit_xml_parses_back_with_what_ci_systems_read() {
    for report in all_reports() {
        let xml = junit::junit_xml(&report);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(!xml.contains(['\x1b', '\0']), "no character XML 1.0 cannot hold");
        let root = parse_xml(&xml);
        assert_eq!(root.name, "testsuites");
        let suites = root.all("testsuite");
        assert_eq!(suites.len(), report.stages.len(), "one suite per stage");
        let mut total = 0;
        for (suite, stage) in suites.iter().zip(&report.stages) {
            assert_eq!(suite.attribute("name"), format!("stage {}", stage.stage));
            let cases = suite.all("testcase");
            assert_eq!(suite.attribute("tests"), cases.len().to_string());
            assert_eq!(cases.len(), stage.checks.len(), "one case per check");
            let failed = stage.checks.iter().filter(|c| c.status == Status::Fail).count();
            assert_eq!(suite.attribute("failures"), failed.to_string());
            assert!(suite.attribute("time").parse::<f64>().is_ok());
            assert_eq!(suite.property("points.earned"), stage.points.earned.to_string());
            assert_eq!(suite.property("points.possible"), stage.points.possible.to_string());
            for (case, check) in cases.iter().zip(&stage.checks) {
                assert_eq!(case.attribute("name"), format!("{} / {}", check.checkpoint, check.check));
                assert_eq!(
                    case.attribute("classname"),
                    format!("minivirt.stage{:02}.{}", check.stage, check.checkpoint)
                );
                assert!(case.attribute("time").parse::<f64>().is_ok());
                assert_eq!(case.property("points.possible"), check.points.possible.to_string());
                let element = match check.status {
                    Status::Pass => None,
                    Status::Fail => Some("failure"),
                    Status::Error => Some("error"),
                    Status::Skipped => Some("skipped"),
                };
                for name in ["failure", "error", "skipped"] {
                    assert_eq!(case.all(name).len(), usize::from(element == Some(name)), "{name} in {case:?}");
                }
                if let Some(name) = element {
                    let failure = case.all(name)[0];
                    assert_eq!(failure.attribute("message"), check.message);
                    assert!(failure.text.contains(&check.message), "GitLab shows the text, not the message");
                }
            }
            total += cases.len();
        }
        assert_eq!(root.attribute("tests"), total.to_string());
    }
    let root = parse_xml(&junit::junit_xml(&made_up_report()));
    let error = root.all("testsuite")[0].all("testcase")[0].all("error")[0];
    assert!(error.text.contains("let answer: u32 = \"forty-two\";"), "markup survives: {}", error.text);
    let failure = root.all("testsuite")[2].all("testcase")[1].all("failure")[0];
    assert!(failure.text.contains("\u{fffd}[31mred\u{fffd}[0m\u{fffd} <tag> & 'quote'"), "{}", failure.text);
}

fn grade_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grade"));
    command.args(["--stage", "1", "--target-dir"]).arg(tmp().join("grade-target")).env("NO_COLOR", "1");
    command.env_remove("GITHUB_OUTPUT");
    command
}

#[test]
fn the_command_line_writes_every_format() {
    checkpoints::require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let (gradescope_file, junit_file, github_output) =
        (dir.path().join("gs/results.json"), dir.path().join("junit.xml"), dir.path().join("github_output"));
    std::fs::write(&github_output, "earlier=1\n").unwrap();
    let out = grade_command()
        .arg("--gradescope")
        .arg(&gradescope_file)
        .arg("--junit")
        .arg(&junit_file)
        .arg("--classroom")
        .env("GITHUB_OUTPUT", &github_output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l == "Score: 15/15"), "the table, as usual: {stdout}");
    let gradescope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gradescope_file).unwrap()).unwrap();
    assert_valid("gradescope-results.schema.json", &gradescope);
    assert_eq!(gradescope["score"], 15);
    assert_eq!(parse_xml(&std::fs::read_to_string(&junit_file).unwrap()).name, "testsuites");
    let outputs = std::fs::read_to_string(&github_output).unwrap();
    let lines: Vec<&str> = outputs.lines().collect();
    assert_eq!(lines[0], "earlier=1", "appended, not overwritten");
    let result = lines[1].strip_prefix("result=").expect("result=<base64>");
    assert_eq!(as_the_reporter_reads_it(result)["status"], "pass");

    // Without $GITHUB_OUTPUT the result is all that is printed.
    let out = grade_command().arg("--classroom").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(as_the_reporter_reads_it(stdout.trim())["max_score"], 15);

    let out = grade_command().args(["--gradescope", "-", "--junit", "-"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only one result can go to standard output"));
}
