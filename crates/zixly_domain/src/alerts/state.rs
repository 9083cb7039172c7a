//! The state machine of one alert (one rule, subject and bucket):
//! `ok → pending → firing → resolved`, and `no_data` when the figures are missing.
//!
//! [`step`] takes what is stored and what the evaluation observed and returns the new state and
//! whether the change is to be notified. It is the one place that decides notification, so the
//! promises of the `alert_transitions` contract hold by construction:
//! * a firing is notified once — when it starts, or at the first evaluation after a snooze that
//!   silenced its start — and again only every `repeat_every` while it lasts;
//! * a resolution is notified when the firing it ends was notified (a resolution of something
//!   nobody heard of would be noise);
//! * nothing is notified while the rule is snoozed;
//! * the same observation twice changes nothing: re-evaluating (a re-import of the same file, a
//!   job run twice) is a no-op.

use chrono::{DateTime, Duration, Utc};

use crate::metrics::UnknownVariant;

/// `alerts.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Ok,
    Pending,
    Firing,
    Resolved,
    NoData,
}

impl AlertState {
    pub const ALL: [AlertState; 5] = [
        AlertState::Ok,
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
        AlertState::NoData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::NoData => "no_data",
        }
    }
}

impl std::str::FromStr for AlertState {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertState::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownVariant {
                what: "state",
                value: s.to_owned(),
                expected: "ok, pending, firing, resolved or no_data",
            })
    }
}

/// What an evaluation saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Crossed,
    Clear,
    NoData,
}

impl Observation {
    /// From [`super::Verdict::crossed`].
    pub fn from_crossed(crossed: Option<bool>) -> Observation {
        match crossed {
            Some(true) => Observation::Crossed,
            Some(false) => Observation::Clear,
            None => Observation::NoData,
        }
    }
}

/// The rule's timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a crossing must last before it fires (zero: at once).
    pub pending_for: Duration,
    /// `None`: notify once per firing.
    pub repeat_every: Option<Duration>,
    pub snoozed_until: Option<DateTime<Utc>>,
}

impl Policy {
    fn snoozed(&self, now: DateTime<Utc>) -> bool {
        self.snoozed_until.is_some_and(|u| now < u)
    }
}

/// The stored part of an alert that the machine reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub state: AlertState,
    pub pending_since: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
}

impl Memory {
    /// Whether the current (or latest) firing has been notified.
    fn firing_notified(&self) -> bool {
        match (self.fired_at, self.last_notified_at) {
            (Some(f), Some(n)) => n >= f,
            _ => false,
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// What to store (`None`: there is no alert and none is needed — a clear or missing figure
    /// for a rule that never crossed in this bucket creates no row).
    pub memory: Option<Memory>,
    /// A row for `alert_transitions`: (from, to). A repeat notification is `firing → firing`.
    pub transition: Option<(Option<AlertState>, AlertState)>,
    /// Whether that transition is to be notified.
    pub notify: bool,
}

impl Step {
    fn unchanged(m: Option<&Memory>) -> Step {
        Step {
            memory: m.copied(),
            transition: None,
            notify: false,
        }
    }
}

/// One evaluation: what was stored (`None`: no alert yet), what was observed, the rule's policy.
pub fn step(prev: Option<&Memory>, obs: Observation, policy: &Policy, now: DateTime<Utc>) -> Step {
    use AlertState::*;
    let snoozed = policy.snoozed(now);
    let from = prev.map(|m| m.state);
    let blank = Memory {
        state: Ok,
        pending_since: None,
        fired_at: None,
        resolved_at: None,
        last_notified_at: None,
    };
    let base = prev.copied().unwrap_or(blank);
    let go = |memory: Memory, notify: bool| Step {
        transition: Some((from, memory.state)),
        memory: Some(memory),
        notify,
    };
    let fire = |since: Option<DateTime<Utc>>| {
        let notify = !snoozed;
        go(
            Memory {
                state: Firing,
                pending_since: since,
                fired_at: Some(now),
                resolved_at: None,
                last_notified_at: if notify {
                    Some(now)
                } else {
                    base.last_notified_at
                },
            },
            notify,
        )
    };
    match (from, obs) {
        // Nothing crossed and nothing to remember.
        (None, Observation::Clear | Observation::NoData) => Step::unchanged(None),
        (None | Some(Ok | Resolved | NoData), Observation::Crossed) => {
            if policy.pending_for <= Duration::zero() {
                fire(Some(now))
            } else {
                go(
                    Memory {
                        state: Pending,
                        pending_since: Some(now),
                        ..base
                    },
                    false,
                )
            }
        }
        (Some(Pending), Observation::Crossed) => {
            let since = base.pending_since.unwrap_or(now);
            if now - since >= policy.pending_for {
                fire(Some(since))
            } else {
                Step::unchanged(prev)
            }
        }
        (Some(Pending), Observation::Clear) => go(
            Memory {
                state: Ok,
                pending_since: None,
                ..base
            },
            false,
        ),
        (Some(Firing), Observation::Crossed) => {
            if snoozed {
                return Step::unchanged(prev);
            }
            let due = if !base.firing_notified() {
                // Its start was silenced by a snooze that has ended.
                true
            } else {
                match (policy.repeat_every, base.last_notified_at) {
                    (Some(every), Some(last)) => now - last >= every,
                    _ => false,
                }
            };
            if due {
                go(
                    Memory {
                        last_notified_at: Some(now),
                        ..base
                    },
                    true,
                )
            } else {
                Step::unchanged(prev)
            }
        }
        (Some(Firing), Observation::Clear) => {
            let notify = !snoozed && base.firing_notified();
            go(
                Memory {
                    state: Resolved,
                    pending_since: None,
                    resolved_at: Some(now),
                    last_notified_at: if notify {
                        Some(now)
                    } else {
                        base.last_notified_at
                    },
                    ..base
                },
                notify,
            )
        }
        // The figures went away (rows deleted, a metric renamed): say so, silently.
        (Some(Pending | Firing | Ok | Resolved), Observation::NoData) => go(
            Memory {
                state: NoData,
                pending_since: None,
                ..base
            },
            false,
        ),
        (Some(Ok | Resolved), Observation::Clear) | (Some(NoData), Observation::NoData) => {
            Step::unchanged(prev)
        }
        (Some(NoData), Observation::Clear) => go(Memory { state: Ok, ..base }, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::{Firing, Pending, Resolved};
    use Observation::{Clear, Crossed, NoData as Gone};

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn policy() -> Policy {
        Policy {
            pending_for: Duration::zero(),
            repeat_every: None,
            snoozed_until: None,
        }
    }

    type Trace = (
        Option<AlertState>,
        Option<(Option<AlertState>, AlertState)>,
        bool,
    );

    /// Runs a sequence of (minute, observation) and returns (state, transition, notify) per step.
    fn run(policy: &Policy, seq: &[(i64, Observation)]) -> Vec<Trace> {
        let mut mem: Option<Memory> = None;
        let mut out = Vec::new();
        for &(m, o) in seq {
            let s = step(mem.as_ref(), o, policy, t(m));
            mem = s.memory;
            out.push((mem.map(|m| m.state), s.transition, s.notify));
        }
        out
    }

    #[test]
    fn first_crossing_without_pending_fires_and_notifies_once() {
        let r = run(&policy(), &[(0, Crossed), (1, Crossed), (2, Crossed)]);
        assert_eq!(r[0], (Some(Firing), Some((None, Firing)), true));
        assert_eq!(r[1], (Some(Firing), None, false));
        assert_eq!(r[2], (Some(Firing), None, false));
    }

    #[test]
    fn clear_without_history_stores_nothing() {
        assert_eq!(
            run(&policy(), &[(0, Clear), (1, Gone)]),
            vec![(None, None, false); 2]
        );
    }

    #[test]
    fn resolution_is_notified_once_and_refiring_notifies_again() {
        let r = run(
            &policy(),
            &[(0, Crossed), (1, Clear), (2, Clear), (3, Crossed)],
        );
        assert_eq!(r[1], (Some(Resolved), Some((Some(Firing), Resolved)), true));
        assert_eq!(r[2], (Some(Resolved), None, false));
        assert_eq!(r[3], (Some(Firing), Some((Some(Resolved), Firing)), true));
    }

    #[test]
    fn pending_period_holds_the_firing() {
        let p = Policy {
            pending_for: Duration::minutes(10),
            ..policy()
        };
        let r = run(
            &p,
            &[(0, Crossed), (5, Crossed), (10, Crossed), (11, Crossed)],
        );
        assert_eq!(r[0], (Some(Pending), Some((None, Pending)), false));
        assert_eq!(r[1], (Some(Pending), None, false));
        assert_eq!(r[2], (Some(Firing), Some((Some(Pending), Firing)), true));
        assert_eq!(r[3], (Some(Firing), None, false));
    }

    #[test]
    fn pending_that_clears_returns_to_ok_silently() {
        let p = Policy {
            pending_for: Duration::minutes(10),
            ..policy()
        };
        let r = run(
            &p,
            &[
                (0, Crossed),
                (5, Clear),
                (6, Crossed),
                (15, Crossed),
                (16, Crossed),
            ],
        );
        assert_eq!(
            r[1],
            (
                Some(AlertState::Ok),
                Some((Some(Pending), AlertState::Ok)),
                false
            )
        );
        // The pending period starts again from the new crossing.
        assert_eq!(
            r[2],
            (Some(Pending), Some((Some(AlertState::Ok), Pending)), false)
        );
        assert_eq!(r[3], (Some(Pending), None, false));
        assert_eq!(r[4], (Some(Firing), Some((Some(Pending), Firing)), true));
    }

    #[test]
    fn repeat_every_notifies_again_while_firing() {
        let p = Policy {
            repeat_every: Some(Duration::minutes(60)),
            ..policy()
        };
        let r = run(
            &p,
            &[
                (0, Crossed),
                (59, Crossed),
                (60, Crossed),
                (61, Crossed),
                (120, Crossed),
            ],
        );
        assert!(!r[1].2);
        assert_eq!(r[2], (Some(Firing), Some((Some(Firing), Firing)), true));
        assert!(!r[3].2);
        assert!(r[4].2);
    }

    #[test]
    fn snooze_suppresses_then_the_firing_is_told_once_it_ends() {
        let p = Policy {
            snoozed_until: Some(t(30)),
            ..policy()
        };
        let r = run(
            &p,
            &[(0, Crossed), (10, Crossed), (30, Crossed), (31, Crossed)],
        );
        assert_eq!(r[0], (Some(Firing), Some((None, Firing)), false));
        assert_eq!(r[1], (Some(Firing), None, false));
        assert_eq!(r[2], (Some(Firing), Some((Some(Firing), Firing)), true));
        assert_eq!(r[3], (Some(Firing), None, false));
    }

    #[test]
    fn snoozed_resolution_and_resolution_of_an_untold_firing_are_silent() {
        let p = Policy {
            snoozed_until: Some(t(30)),
            ..policy()
        };
        let r = run(&p, &[(0, Crossed), (10, Clear)]);
        assert_eq!(
            r[1],
            (Some(Resolved), Some((Some(Firing), Resolved)), false)
        );
        // Notified firing, snoozed afterwards: its resolution during the snooze is silent too.
        let mut mem = step(None, Crossed, &policy(), t(0)).memory;
        let s = step(mem.as_ref(), Clear, &p, t(5));
        assert!(!s.notify);
        mem = s.memory;
        assert_eq!(mem.map(|m| m.state), Some(Resolved));
    }

    #[test]
    fn no_data_is_recorded_silently_and_recovers() {
        let r = run(
            &policy(),
            &[(0, Crossed), (1, Gone), (2, Gone), (3, Clear), (4, Crossed)],
        );
        assert_eq!(
            r[1],
            (
                Some(AlertState::NoData),
                Some((Some(Firing), AlertState::NoData)),
                false
            )
        );
        assert_eq!(r[2], (Some(AlertState::NoData), None, false));
        assert_eq!(
            r[3],
            (
                Some(AlertState::Ok),
                Some((Some(AlertState::NoData), AlertState::Ok)),
                false
            )
        );
        assert_eq!(
            r[4],
            (Some(Firing), Some((Some(AlertState::Ok), Firing)), true)
        );
    }

    /// Every (state, observation) pair with every policy switch: the contract's promises hold.
    #[test]
    fn exhaustive_promises() {
        let policies = [
            policy(),
            Policy {
                pending_for: Duration::minutes(5),
                ..policy()
            },
            Policy {
                repeat_every: Some(Duration::minutes(5)),
                ..policy()
            },
            Policy {
                snoozed_until: Some(t(1000)),
                ..policy()
            },
        ];
        let obs = [Crossed, Clear, Gone];
        for p in &policies {
            for prev_state in AlertState::ALL.map(Some).into_iter().chain([None]) {
                for notified in [false, true] {
                    let prev = prev_state.map(|state| Memory {
                        state,
                        pending_since: Some(t(-100)),
                        fired_at: Some(t(-50)),
                        resolved_at: None,
                        last_notified_at: notified.then(|| t(-50)),
                    });
                    for o in obs {
                        let s = step(prev.as_ref(), o, p, t(0));
                        if p.snoozed(t(0)) {
                            assert!(!s.notify, "{prev_state:?} {o:?} notified while snoozed");
                        }
                        if s.notify {
                            assert!(s.transition.is_some());
                            let to = s.transition.unwrap().1;
                            assert!(matches!(to, Firing | Resolved), "{to:?} notified");
                            assert_eq!(s.memory.unwrap().last_notified_at, Some(t(0)));
                        }
                        if s.transition.is_none() {
                            assert_eq!(s.memory, prev, "a silent step changed the memory");
                        }
                        // Idempotent: the same observation at the same instant again changes nothing.
                        let again = step(s.memory.as_ref(), o, p, t(0));
                        assert_eq!(again.transition, None, "{prev_state:?} {o:?} twice");
                        assert!(!again.notify);
                    }
                }
            }
        }
    }

    #[test]
    fn states_round_trip() {
        for s in AlertState::ALL {
            assert_eq!(s.as_str().parse::<AlertState>(), Result::Ok(s));
        }
    }
}
