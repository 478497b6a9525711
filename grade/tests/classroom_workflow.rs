//! The GitHub Classroom workflow a handout carries cannot run here (it needs GitHub's runners),
//! so its structure is checked instead: the triggers, a Linux runner, /dev/kvm opened by a
//! udev rule before anything runs a VM, the guest cached under a key made of every file
//! labs/guest/build.sh hashes into its own cache keys, the grader's `--classroom` step, and
//! the reporter reading that step's `result`.

use grade::classroom::{WORKFLOW, WORKFLOW_PATH};
use yaml_rust2::{Yaml, YamlLoader};

fn workflow() -> Yaml {
    let mut docs = YamlLoader::load_from_str(WORKFLOW).expect("the workflow is YAML");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn steps(workflow: &Yaml) -> Vec<Yaml> {
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    assert_eq!(jobs.len(), 1, "one job");
    let job = jobs.values().next().unwrap();
    assert!(job["runs-on"].as_str().unwrap().starts_with("ubuntu-"), "GitHub's hosted Linux runners");
    job["steps"].as_vec().expect("steps").clone()
}

/// The index of the one step that `uses` the action `action` (any version).
fn uses(steps: &[Yaml], action: &str) -> usize {
    let found: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i]["uses"].as_str().is_some_and(|u| u.split('@').next() == Some(action)))
        .collect();
    assert_eq!(found.len(), 1, "one step uses {action}");
    found[0]
}

/// The index of the one step whose `run` contains `text`.
fn runs(steps: &[Yaml], text: &str) -> usize {
    let found: Vec<usize> =
        (0..steps.len()).filter(|&i| steps[i]["run"].as_str().is_some_and(|r| r.contains(text))).collect();
    assert_eq!(found.len(), 1, "one step runs {text}");
    found[0]
}

#[test]
fn the_workflow_has_the_structure_classroom_needs() {
    let workflow = workflow();
    let triggers = workflow["on"].as_hash().expect("on: a map of events");
    for event in ["push", "workflow_dispatch", "repository_dispatch"] {
        assert!(triggers.contains_key(&Yaml::String(event.into())), "runs on {event}");
    }
    let steps = steps(&workflow);
    for step in &steps {
        assert!(step["name"].as_str().is_some(), "every step is named: {step:?}");
        if let Some(action) = step["uses"].as_str() {
            assert!(action.contains("@v"), "{action} is pinned to a version");
        }
        assert!(step["uses"].as_str().is_some() != step["run"].as_str().is_some(), "uses or run: {step:?}");
    }

    let checkout = uses(&steps, "actions/checkout");
    let kvm = runs(&steps, "udevadm trigger --name-match=kvm");
    let rule = steps[kvm]["run"].as_str().unwrap();
    assert!(rule.contains(r#"KERNEL=="kvm", GROUP="kvm", MODE="0666""#), "{rule}");
    assert!(rule.find("/etc/udev/rules.d/") < rule.find("udevadm control --reload-rules"), "rule, reload, trigger");
    assert!(rule.find("udevadm control --reload-rules") < rule.find("udevadm trigger"));

    let grade = runs(&steps, "-p grade -- --classroom");
    assert!(checkout < kvm && kvm < grade, "checkout, then /dev/kvm, then grading");
    let id = steps[grade]["id"].as_str().expect("the grading step has an id");
    assert_eq!(steps[grade]["continue-on-error"].as_bool(), Some(true), "lost points still reach the reporter");

    let reporter = uses(&steps, "classroom-resources/autograding-grading-reporter");
    assert!(grade < reporter);
    assert_eq!(steps[reporter]["with"]["runners"].as_str(), Some(id));
    // The reporter reads `${RUNNER.toUpperCase()}_RESULTS`.
    let variable = format!("{}_RESULTS", id.to_uppercase());
    let value = steps[reporter]["env"][variable.as_str()].as_str();
    assert_eq!(value, Some(format!("${{{{ steps.{id}.outputs.result }}}}").as_str()), "{variable}");
    assert!(steps[reporter]["if"].as_str().unwrap().contains("!cancelled()"));

    let caches: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i]["uses"].as_str().is_some_and(|u| u.starts_with("actions/cache@")))
        .collect();
    let guest = caches
        .iter()
        .copied()
        .find(|&i| steps[i]["with"]["path"].as_str().unwrap().contains("~/.cache/minivirt/guest"))
        .expect("a cache of the guest");
    assert!(guest < grade, "restored before grading builds the guest");
}

/// The files `compute_keys` in labs/guest/build.sh reads (`"$HERE/NAME"`), and the script itself
/// (its recipes are part of its keys).
fn guest_inputs() -> Vec<String> {
    let script = std::fs::read_to_string(checkpoints::repo_root().join("labs/guest/build.sh")).unwrap();
    let start = script.find("\ncompute_keys() {").expect("build.sh has compute_keys");
    let body = &script[start..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut inputs = vec!["build.sh".to_string()];
    for piece in body.split("\"$HERE/").skip(1) {
        inputs.push(piece[..piece.find('"').unwrap()].to_string());
    }
    inputs
}

#[test]
fn the_guest_cache_key_covers_every_input_of_the_guest_build() {
    let workflow = workflow();
    let steps = steps(&workflow);
    let cache = steps
        .iter()
        .find(|s| s["with"]["path"].as_str().is_some_and(|p| p.contains("~/.cache/minivirt/guest")))
        .unwrap();
    let key = cache["with"]["key"].as_str().unwrap();
    let hashed = &key[key.find("hashFiles(").expect("keyed by hashFiles") + "hashFiles(".len()..];
    let hashed = &hashed[..hashed.find(')').unwrap()];
    let patterns: Vec<&str> = hashed.split(',').map(|p| p.trim().trim_matches('\'')).collect();
    let inputs = guest_inputs();
    assert!(inputs.len() >= 5, "{inputs:?}");
    for input in &inputs {
        let file = format!("labs/guest/{input}");
        let folder = format!("{file}/**");
        assert!(
            patterns.iter().any(|p| *p == file || *p == folder),
            "build.sh hashes {input}, the cache key does not: {patterns:?}"
        );
    }
    // The restore key is the key without the hash: an older guest, which build.sh checks.
    let restore = cache["with"]["restore-keys"].as_str().unwrap().trim();
    assert!(key.starts_with(restore), "{restore} / {key}");
    for path in cache["with"]["path"].as_str().unwrap().lines() {
        assert!(path.starts_with("~/.cache/minivirt/guest/"), "only the guest's finished parts: {path}");
    }
}

#[test]
fn the_handout_carries_the_workflow() {
    let out = tempfile::tempdir().unwrap();
    let repo = checkpoints::repo_root();
    let summary = grade::tree::write_handout(&repo, out.path(), &["stage1-exit-handling".to_string()]).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join(WORKFLOW_PATH)).unwrap(), WORKFLOW);
    let copied =
        grade::tree::list_files(&repo).unwrap().iter().filter(|f| !f.starts_with(grade::tree::MUTANTS_DIR)).count();
    assert_eq!(summary.files, copied + 1, "every file but the mutants, and the workflow");
}

#[test]
fn an_instructors_ready_guest_replaces_the_build() {
    let workflow = workflow();
    let job = workflow["jobs"].as_hash().unwrap().values().next().unwrap().clone();
    // The harness and the stages read MINIVIRT_GUEST_DIR; unset (empty) means "build the guest".
    assert_eq!(job["env"]["MINIVIRT_GUEST_DIR"].as_str(), Some("${{ vars.MINIVIRT_GUEST_DIR }}"));
    let steps = steps(&workflow);
    let cache = steps
        .iter()
        .find(|s| s["with"]["path"].as_str().is_some_and(|p| p.contains("~/.cache/minivirt/guest")))
        .unwrap();
    assert_eq!(cache["if"].as_str(), Some("${{ !vars.MINIVIRT_GUEST_DIR }}"), "no guest cache when one is given");
}
