//! Splitting a command line the way a POSIX shell does for simple commands: single
//! quotes, double quotes (with `\` escaping `"`, `\`, `$` and `` ` ``), backslashes
//! outside quotes, and the list operators `;`, `&&` and `||`. No pipes, no expansion:
//! what `ssh host CMD` sends labwright's commands through.

/// How a command is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    First,
    /// `;`
    Always,
    /// `&&`
    IfOk,
    /// `||`
    IfFailed,
}

/// One simple command of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub join: Join,
    pub argv: Vec<String>,
}

/// Splits `line` into simple commands; `Err` names the syntax problem the way bash
/// reports it.
pub fn split(line: &str) -> Result<Vec<Command>, String> {
    let mut cmds = vec![];
    let mut argv: Vec<String> = vec![];
    let mut word = String::new();
    let mut in_word = false;
    let mut join = Join::First;
    let mut chars = line.chars().peekable();
    let push_word = |argv: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            argv.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => {
                            return Err("unexpected EOF while looking for matching `''".to_string());
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&n @ ('"' | '\\' | '$' | '`')) => {
                                word.push(n);
                                chars.next();
                            }
                            Some('\n') => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some(x) => word.push(x),
                        None => {
                            return Err(
                                "unexpected EOF while looking for matching `\"'".to_string()
                            );
                        }
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(x) => {
                    in_word = true;
                    word.push(x);
                }
                None => {
                    in_word = true;
                    word.push('\\');
                }
            },
            ' ' | '\t' | '\n' => push_word(&mut argv, &mut word, &mut in_word),
            ';' | '&' | '|' => {
                push_word(&mut argv, &mut word, &mut in_word);
                let next = match c {
                    ';' => Join::Always,
                    '&' if chars.peek() == Some(&'&') => {
                        chars.next();
                        Join::IfOk
                    }
                    '|' if chars.peek() == Some(&'|') => {
                        chars.next();
                        Join::IfFailed
                    }
                    other => {
                        return Err(format!(
                            "syntax error: `{other}' is not supported by this shell"
                        ));
                    }
                };
                if argv.is_empty() {
                    let tok = match next {
                        Join::IfOk => "&&",
                        Join::IfFailed => "||",
                        _ => ";",
                    };
                    return Err(format!("syntax error near unexpected token `{tok}'"));
                }
                cmds.push(Command {
                    join,
                    argv: std::mem::take(&mut argv),
                });
                join = next;
            }
            x => {
                in_word = true;
                word.push(x);
            }
        }
    }
    push_word(&mut argv, &mut word, &mut in_word);
    if !argv.is_empty() {
        cmds.push(Command { join, argv });
    } else if join == Join::IfOk || join == Join::IfFailed {
        return Err("syntax error: unexpected end of file".into());
    }
    Ok(cmds)
}

/// Quotes a word for a shell when it needs it (for messages).
pub fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        split(s)
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.argv)
            .unwrap_or_default()
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            argv(r#"dpkg-query -W -f='${Status}' sanoid"#),
            vec!["dpkg-query", "-W", "-f=${Status}", "sanoid"]
        );
        assert_eq!(
            argv(r#"ls "/a b/\"c\"" d\ e"#),
            vec!["ls", "/a b/\"c\"", "d e"]
        );
        assert_eq!(argv("echo ''"), vec!["echo", ""]);
        let l = split("true && false; echo x || y").unwrap_or_default();
        let joins: Vec<Join> = l.iter().map(|c| c.join).collect();
        assert_eq!(
            joins,
            vec![Join::First, Join::IfOk, Join::Always, Join::IfFailed]
        );
        assert!(split("echo 'open").is_err());
        assert!(split("a | b").is_err());
        assert!(split("&& a").is_err());
    }
}
