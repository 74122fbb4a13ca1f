//! `sns-filter test` and `sns-filter validate` (also `tributary filter test` and `tributary filter
//! validate`): the engine on the command line. Exit codes follow grep: 0 match (or valid), 1 no match (or
//! invalid), 2 error (unreadable file, bad message).

use std::path::Path;

use super::{Message, Policy, Scope};

/// The subcommands, as both binaries declare them (feature `cli`).
#[cfg(feature = "cli")]
#[derive(Debug, clap::Subcommand)]
pub enum FilterCommand {
    /// Does a message match a policy? Prints the explanation. Exit 0 match, 1 no match, 2 error.
    Test {
        /// The filter policy, as JSON.
        #[arg(long)]
        policy: std::path::PathBuf,
        /// The message: attributes as SNS delivers them ({"name": {"Type": "String", "Value": "..."}}) in
        /// MessageAttributes scope, the JSON body in MessageBody scope.
        #[arg(long)]
        message: std::path::PathBuf,
        /// MessageAttributes (default) or MessageBody.
        #[arg(long, default_value = "MessageAttributes")]
        scope: Scope,
    },
    /// Is a policy valid? Prints its canonical form or the error. Exit 0 valid, 1 invalid, 2 error.
    Validate {
        /// The filter policy, as JSON.
        policy: std::path::PathBuf,
        /// MessageAttributes (default) or MessageBody.
        #[arg(long, default_value = "MessageAttributes")]
        scope: Scope,
    },
}

#[cfg(feature = "cli")]
impl FilterCommand {
    /// Run the command: what it prints and its exit code.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Test {
                policy,
                message,
                scope,
            } => test(policy, message, *scope),
            Self::Validate { policy, scope } => validate(policy, *scope),
        }
    }

    /// Run the command and print its outcome (errors to standard error); returns the exit code.
    pub fn run(&self) -> std::process::ExitCode {
        let outcome = self.outcome();
        if outcome.code == 2 {
            eprintln!("{}", outcome.text.trim_end());
        } else {
            print!("{}", outcome.text);
        }
        std::process::ExitCode::from(outcome.code)
    }
}

/// What a command prints and how it exits.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code: 0, 1 or 2.
    pub code: u8,
    /// Text for standard output (or standard error when `code` is 2).
    pub text: String,
}

fn read(path: &Path) -> Result<String, Outcome> {
    std::fs::read_to_string(path).map_err(|e| Outcome {
        code: 2,
        text: format!("cannot read {}: {e}", path.display()),
    })
}

/// Validate the policy in `policy`: print its canonical form (exit 0) or the error (exit 1).
pub fn validate(policy: &Path, scope: Scope) -> Outcome {
    let text = match read(policy) {
        Ok(t) => t,
        Err(o) => return o,
    };
    match Policy::parse_str(&text, scope) {
        Ok(p) => Outcome {
            code: 0,
            text: format!("{}\n", p.canonical_json()),
        },
        Err(e) => Outcome {
            code: 1,
            text: format!("invalid {scope} policy: {e}\n"),
        },
    }
}

/// Evaluate the policy in `policy` against the message in `message`: attributes in the form SNS delivers
/// them for `MessageAttributes`, the body itself for `MessageBody`.
pub fn test(policy: &Path, message: &Path, scope: Scope) -> Outcome {
    let (policy_text, message_text) = match (read(policy), read(message)) {
        (Ok(p), Ok(m)) => (p, m),
        (Err(o), _) | (_, Err(o)) => return o,
    };
    let policy = match Policy::parse_str(&policy_text, scope) {
        Ok(p) => p,
        Err(e) => {
            return Outcome {
                code: 2,
                text: format!("invalid {scope} policy: {e}"),
            };
        }
    };
    let parsed = match scope {
        Scope::MessageAttributes => Message::from_attributes_json(&message_text),
        Scope::MessageBody => Message::from_body_json(&message_text),
    };
    let parsed = match parsed {
        Ok(m) => m,
        Err(e) => {
            return Outcome {
                code: 2,
                text: format!("{}: {e}", message.display()),
            };
        }
    };
    let explanation = policy.explain(&parsed);
    Outcome {
        code: u8::from(!explanation.matched),
        text: explanation.to_string(),
    }
}
