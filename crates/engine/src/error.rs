//! The engine's errors: one for the pipeline ([`EngineError`]) and one for a single
//! step of the executor ([`StepError`]), so the CLI picks exit codes and advice by
//! kind in one place. Messages name the operation and the API path; they never carry
//! a secret (the client's errors do not either).

/// Errors of the engine's pipeline (scan, plan, apply, validate).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<labwright_pve::Error>,
    },
    /// A guard said no before anything was written (risk, destroy, proof, stale plan,
    /// missing secret).
    #[error("{0}")]
    Refused(String),
    #[error("journal {path}: {message}")]
    Journal { path: String, message: String },
}

impl EngineError {
    pub fn api(what: &str, source: labwright_pve::Error) -> Self {
        EngineError::Api {
            what: what.to_string(),
            source: Box::new(source),
        }
    }
}

/// Why one step of an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The API refused or did not answer.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<labwright_pve::Error>,
    },
    /// The call was accepted but its task failed (the task log says why).
    #[error("{what}: task failed: {detail}")]
    TaskFailed { what: String, detail: String },
    /// The change was made, the probe over a fresh connection failed, and the change
    /// was reverted.
    #[error("{probe}; the step was reverted and the node answers again. Stopped.")]
    ProbeFailedReverted { probe: String },
    /// The change was made and the probe failed, and the revert failed too: the node
    /// may be unreachable (see the runbook).
    #[error("{probe}; {revert}")]
    ProbeFailedRevertFailed { probe: String, revert: String },
    /// The node is not in the state the plan was made for, or a safety check refused.
    #[error("{0}")]
    Refused(String),
    /// A secret the step needs could not be read (the message names the reference,
    /// never the value).
    #[error("{0}")]
    Secret(String),
    /// The journal could not record the step.
    #[error("{0}")]
    Journal(String),
}

impl StepError {
    /// An API error of `what`, unless it is a failed task, which is told apart.
    pub fn api(what: impl Into<String>, source: labwright_pve::Error) -> Self {
        let what = what.into();
        match &source {
            labwright_pve::Error::TaskFailed { .. } => StepError::TaskFailed {
                what,
                detail: source.to_string(),
            },
            _ => StepError::Api {
                what,
                source: Box::new(source),
            },
        }
    }

    /// `|e| StepError::api(what, e)`, for `map_err`.
    pub fn ctx(what: impl Into<String>) -> impl FnOnce(labwright_pve::Error) -> Self {
        let what = what.into();
        move |e| StepError::api(what, e)
    }
}

impl From<EngineError> for StepError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Journal { .. } => StepError::Journal(e.to_string()),
            EngineError::Refused(m) => StepError::Refused(m),
            EngineError::Api { what, source } => StepError::Api { what, source },
        }
    }
}
