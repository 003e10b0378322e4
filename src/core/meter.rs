//! Where a request's usage goes once its answer has ended: the handler gives each request a
//! [`Meter`], and whichever part of the core sees the end reports to it exactly once: the
//! client body when its last byte went out (or it was dropped: a client that left), the
//! handler itself for an answer that had no upstream body (an error, a count).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::core::route::{Target, Via};
use crate::core::usage::Metered;

/// What a request used, as far as the proxy knows at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The upstream's own usage report; `None` when it sent none (or the body was relayed
    /// unread, or no upstream answered).
    pub usage: Option<Metered>,
    /// Who answered; `None` when no target did.
    pub answered_by: Option<Answered>,
    /// The status the client got.
    pub status: u16,
}

/// The attempt that answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The target.
    pub target: &'static Target,
    /// The model it was asked for (its `model`, `{*}` filled in).
    pub model: String,
    /// The key (or binding) it was reached through.
    pub via: Via,
    /// Upstream calls the request made, this one included.
    pub calls: u32,
    /// When its first token arrived, in ms since the epoch.
    pub first_token_at_ms: u64,
}

/// What receives the [`Reading`].
pub type Report = Box<dyn FnOnce(Reading)>;

/// A request's meter: reports once, the first time, and never again. The default meters
/// nothing.
#[derive(Clone, Default)]
pub struct Meter(Option<Rc<RefCell<Option<Report>>>>);

impl Meter {
    /// A meter that hands its one reading to `report`.
    pub fn new(report: Report) -> Self {
        Self(Some(Rc::new(RefCell::new(Some(report)))))
    }

    /// Whether anything listens.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// Reports `reading`, unless the meter already reported.
    pub fn report(&self, reading: Reading) {
        let report = self
            .0
            .as_ref()
            .and_then(|cell| cell.try_borrow_mut().ok().and_then(|mut r| r.take()));
        if let Some(report) = report {
            report(reading);
        }
    }

    /// The hook the body of `answered`'s answer reports through.
    pub fn for_body(&self, answered: Answered) -> Option<BodyEnd> {
        let meter = self.clone();
        self.is_active().then(|| -> BodyEnd {
            Box::new(move |usage| {
                meter.report(Reading {
                    usage,
                    answered_by: Some(answered),
                    status: 200,
                })
            })
        })
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_active() {
            "Meter(active)"
        } else {
            "Meter(none)"
        })
    }
}

/// What a client body calls when it has ended, with the usage its translator saw.
pub type BodyEnd = Box<dyn FnOnce(Option<Metered>)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_and_the_default_reports_nothing() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let meter = Meter::new(Box::new(move |r: Reading| sink.borrow_mut().push(r)));
        let copy = meter.clone();
        let used = Metered {
            input: 3,
            ..Metered::default()
        };
        copy.report(Reading {
            usage: Some(used),
            answered_by: None,
            status: 200,
        });
        meter.report(Reading {
            usage: None,
            answered_by: None,
            status: 200,
        });
        assert_eq!(seen.borrow().len(), 1);
        assert_eq!(seen.borrow()[0].usage, Some(used));
        Meter::default().report(Reading {
            usage: None,
            answered_by: None,
            status: 200,
        });
        let answered = Answered {
            target: &NONE,
            model: String::new(),
            via: Via::Key("K"),
            calls: 1,
            first_token_at_ms: 0,
        };
        assert!(Meter::default().for_body(answered).is_none());
    }

    static NONE: Target = Target {
        provider: "openai",
        model: "m",
        base_url: "",
        vias: &[],
        max_tokens: None,
        max_output_tokens: None,
        account_id: None,
        anthropic_betas: None,
        policy: crate::core::route::TargetPolicy::DEFAULT,
    };
}
