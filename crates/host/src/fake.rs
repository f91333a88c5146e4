//! A [`HostExec`] for unit tests: records every command and answers from a closure.

use std::sync::Mutex;

use crate::{HostCmd, HostExec, HostFuture, HostOutput};

type Answer = dyn Fn(&HostCmd) -> HostOutput + Send + Sync;

pub struct FakeHost {
    answer: Box<Answer>,
    log: Mutex<Vec<HostCmd>>,
}

impl FakeHost {
    pub fn new(answer: impl Fn(&HostCmd) -> HostOutput + Send + Sync + 'static) -> FakeHost {
        FakeHost {
            answer: Box::new(answer),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every command run so far, in order.
    pub fn commands(&self) -> Vec<HostCmd> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl HostExec for FakeHost {
    fn target(&self) -> String {
        "fake@node".into()
    }

    fn run<'a>(&'a self, cmd: &'a HostCmd) -> HostFuture<'a> {
        if let Ok(mut l) = self.log.lock() {
            l.push(cmd.clone());
        }
        let out = (self.answer)(cmd);
        Box::pin(async move { Ok(out) })
    }
}
