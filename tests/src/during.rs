//! Steps a checkpoint takes while the binary runs: once the output matches a pattern, talk
//! to the VMM's monitor on its Unix socket and then type more input to the guest.
//!
//! ```toml
//! [[checkpoint.when]]
//! output = 'gva-demo: gva=(0x[0-9a-f]+)'     # the first match triggers the step
//! monitor = "{work}/monitor.sock"           # `--monitor unix:PATH` of stage 8
//! send = ["translate {1}", "info stats"]    # {1}, {2}… are the match's groups
//! input = "\n"                              # then written to the binary's stdin
//! ```
//!
//! The monitor's transcript — the prompt, each command and its answer — is added to the output
//! the checks see. Checks can name the groups of the first step's match as `{when:1}`, …
//! (escaped for the regular expression), to compare what the guest printed with what the
//! monitor answered.

use regex::Regex;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The monitor's prompt, which ends every answer.
pub const PROMPT: &str = "(minivirt) ";

/// How long one answer may take before the step gives up on the monitor.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to keep trying to connect while the VMM sets its socket up.
const CONNECT_RETRY: Duration = Duration::from_secs(10);

/// Connects to the monitor at `path` (retrying for a few seconds while the VMM starts) and
/// sends `commands`; returns the transcript, or the transcript so far and what went wrong.
pub fn talk_to_monitor(path: &str, commands: &[String]) -> String {
    talk_to_monitor_within(path, commands, CONNECT_RETRY)
}

fn talk_to_monitor_within(path: &str, commands: &[String], connect_for: Duration) -> String {
    let deadline = Instant::now() + connect_for;
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return format!("[harness] cannot connect to the monitor at {path}: {e}\n"),
        }
    };
    let mut transcript = String::new();
    if let Err(e) = converse(&stream, commands, &mut transcript) {
        transcript += &format!("\n[harness] monitor conversation ended: {e}\n");
    }
    transcript
}

fn converse(stream: &UnixStream, commands: &[String], transcript: &mut String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    read_until_prompt(&mut reader, transcript)?;
    for command in commands {
        writeln!(writer, "{command}")?;
        *transcript += command;
        *transcript += "\n";
        read_until_prompt(&mut reader, transcript)?;
    }
    Ok(())
}

/// Reads answer lines into `transcript` until the prompt (which has no newline) arrives.
fn read_until_prompt(reader: &mut impl BufRead, transcript: &mut String) -> std::io::Result<()> {
    let mut pending = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            *transcript += &String::from_utf8_lossy(&pending);
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the monitor closed the connection"));
        }
        let taken = available.len();
        pending.extend_from_slice(available);
        reader.consume(taken);
        if pending.ends_with(PROMPT.as_bytes()) {
            *transcript += &String::from_utf8_lossy(&pending);
            return Ok(());
        }
    }
}

/// Replaces `{1}`, `{2}`, … in `text` by the groups of `captures` (missing groups become "").
pub fn fill_groups(text: &str, captures: &[String]) -> String {
    fill(text, captures, "{", |group| group.to_string())
}

/// Replaces `{when:1}`, … in a check's pattern by the first step's groups, regex-escaped.
pub fn fill_check_pattern(pattern: &str, captures: &[String]) -> String {
    fill(pattern, captures, "{when:", regex::escape)
}

fn fill(text: &str, captures: &[String], open: &str, render: impl Fn(&str) -> String) -> String {
    let mut out = text.to_string();
    // Highest first, so that {1} does not eat the start of {12}.
    for (index, group) in captures.iter().enumerate().rev() {
        out = out.replace(&format!("{open}{}}}", index + 1), &render(group));
    }
    out
}

/// The groups of the first match of `pattern` in `text`, or `None` if it does not match.
pub fn first_match(pattern: &Regex, text: &str) -> Option<Vec<String>> {
    let captures = pattern.captures(text)?;
    Some(captures.iter().skip(1).map(|group| group.map_or(String::new(), |m| m.as_str().to_string())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn groups_fill_commands_and_escaped_patterns() {
        let groups = vec!["0x7f00".to_string(), "a.b".to_string()];
        assert_eq!(fill_groups("translate {1} {2} {3}", &groups), "translate 0x7f00 a.b {3}");
        assert_eq!(fill_check_pattern("gpa {when:2}", &groups), "gpa a\\.b");
        let re = Regex::new(r"gva=(0x[0-9a-f]+)").unwrap();
        assert_eq!(first_match(&re, "x gva=0x10 y gva=0x20"), Some(vec!["0x10".to_string()]));
        assert_eq!(first_match(&re, "nothing"), None);
    }

    #[test]
    fn a_monitor_conversation_is_transcribed_prompt_by_prompt() {
        let path = std::env::temp_dir().join(format!("minivirt-during-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            write!(writer, "{PROMPT}").unwrap();
            for line in BufReader::new(stream).lines() {
                let line = line.unwrap();
                write!(writer, "you said {line}\n{PROMPT}").unwrap();
            }
        });
        let transcript = talk_to_monitor(path.to_str().unwrap(), &["hello".into(), "info stats".into()]);
        assert_eq!(
            transcript,
            "(minivirt) hello\nyou said hello\n(minivirt) info stats\nyou said info stats\n(minivirt) "
        );
        drop(server);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_missing_monitor_is_reported_not_waited_for_forever() {
        let transcript =
            talk_to_monitor_within("/nonexistent/minivirt.sock", &["info stats".into()], Duration::from_millis(300));
        assert!(transcript.contains("cannot connect to the monitor"), "{transcript}");
    }
}
