//! A command to run on the node, and what it returned.

use serde::{Deserialize, Serialize};

use crate::HostError;

/// One command: an argv list and, optionally, what it reads on stdin (a file's
/// content). Serialisable because plans carry their commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCmd {
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

impl HostCmd {
    pub fn new<I, S>(argv: I) -> HostCmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HostCmd {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    /// The same command reading `content` on stdin.
    pub fn with_stdin(mut self, content: impl Into<String>) -> HostCmd {
        self.stdin = Some(content.into());
        self
    }

    /// The remote shell line (each argument quoted), as ssh sends it.
    pub fn line(&self) -> String {
        self.argv
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What plans and logs show: the line, and the size of stdin (never its content).
    pub fn display(&self) -> String {
        match &self.stdin {
            Some(s) => format!("{} < ({} bytes)", self.line(), s.len()),
            None => self.line(),
        }
    }
}

impl std::fmt::Display for HostCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// Quotes one argument for a POSIX shell: bare when it is made of safe characters,
/// otherwise in single quotes (a `'` inside becomes `'\''`).
pub fn quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%^".contains(&b));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// What a command returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl HostOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// The output when the command succeeded; otherwise an error naming the command,
    /// its exit code and the first line of what it printed on stderr.
    pub fn checked(self, target: &str, cmd: &HostCmd) -> Result<HostOutput, HostError> {
        if self.ok() {
            return Ok(self);
        }
        let stderr = self
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(nothing on stderr)")
            .trim()
            .to_string();
        Err(HostError::Failed {
            target: target.to_string(),
            cmd: cmd.display(),
            code: self.code,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("tank/media"), "tank/media");
        assert_eq!(quote("compression=lz4"), "compression=lz4");
        assert_eq!(quote("${Status}"), "'${Status}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
    }

    #[test]
    fn display_never_shows_stdin() {
        let c = HostCmd::new(["install", "-D", "/dev/stdin", "/etc/x"]).with_stdin("secret-ish");
        assert_eq!(c.display(), "install -D /dev/stdin /etc/x < (10 bytes)");
        assert!(!c.display().contains("secret"));
    }

    #[test]
    fn a_failure_names_the_command_and_stderr() {
        let c = HostCmd::new(["zfs", "create", "tank/x"]);
        let out = HostOutput {
            code: 1,
            stdout: String::new(),
            stderr: "\ncannot create 'tank/x': parent does not exist\n".into(),
        };
        let e = out
            .checked("root@n:22", &c)
            .expect_err("exit 1")
            .to_string();
        assert!(e.contains("zfs create tank/x"), "{e}");
        assert!(e.contains("exit 1"), "{e}");
        assert!(e.contains("parent does not exist"), "{e}");
    }
}
