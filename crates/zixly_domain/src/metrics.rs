//! The metric catalogue's vocabulary: how a metric is aggregated within a bucket, which direction
//! is good, and the built-in KPIs, whose definitions are fixed by code (not rows: a margin or a
//! win rate is a ratio of sums, which none of the five aggregations expresses, and their names
//! must mean the same in every tenant for goals and alerts).

use std::fmt;
use std::str::FromStr;

/// How the values of one metric within a bucket combine into the one number shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Flows: hours worked, tickets closed.
    Sum,
    /// Scores and rates: NPS, utilisation.
    Average,
    /// Levels: the value at the latest instant of the bucket (headcount, balance).
    Last,
    Min,
    Max,
}

impl Aggregation {
    pub const ALL: [Aggregation; 5] = [
        Aggregation::Sum,
        Aggregation::Average,
        Aggregation::Last,
        Aggregation::Min,
        Aggregation::Max,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Average => "average",
            Aggregation::Last => "last",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
        }
    }
}

/// Whether a rising value is good news (revenue) or bad news (churn, costs): goals and alerts
/// read it to tell "above target" from "over budget".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    UpIsGood,
    DownIsGood,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::UpIsGood => "up_is_good",
            Direction::DownIsGood => "down_is_good",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`: expected {expected}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Aggregation {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Aggregation::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownVariant {
                what: "aggregation",
                value: s.to_owned(),
                expected: "sum, average, last, min or max",
            })
    }
}

impl FromStr for Direction {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up_is_good" => Ok(Direction::UpIsGood),
            "down_is_good" => Ok(Direction::DownIsGood),
            _ => Err(UnknownVariant {
                what: "direction",
                value: s.to_owned(),
                expected: "up_is_good or down_is_good",
            }),
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A built-in KPI: computed from `financials` / `lead_events` by code, read-only in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinKpi {
    pub name: &'static str,
    pub display_name: &'static str,
    /// `None` for amounts: they are in the tenant's base currency, which the caller knows.
    pub unit: Option<&'static str>,
    /// How the KPI combines over a bucket; `None` for ratios (margin, win rate), computed from
    /// the bucket's sums rather than by any of the five aggregations.
    pub aggregation: Option<Aggregation>,
    pub direction: Direction,
    pub description: &'static str,
}

/// The KPIs every tenant has, in the order the dashboard shows them.
pub const BUILTIN_KPIS: &[BuiltinKpi] = &[
    BuiltinKpi {
        name: "revenue",
        display_name: "Revenue",
        unit: None,
        aggregation: Some(Aggregation::Sum),
        direction: Direction::UpIsGood,
        description: "Sum of revenue over the period, in the base currency.",
    },
    BuiltinKpi {
        name: "expenses",
        display_name: "Expenses",
        unit: None,
        aggregation: Some(Aggregation::Sum),
        direction: Direction::DownIsGood,
        description: "Sum of expenses over the period, in the base currency.",
    },
    BuiltinKpi {
        name: "net_profit",
        display_name: "Net profit",
        unit: None,
        aggregation: Some(Aggregation::Sum),
        direction: Direction::UpIsGood,
        description: "Revenue minus expenses over the period.",
    },
    BuiltinKpi {
        name: "margin",
        display_name: "Margin",
        unit: Some("%"),
        aggregation: None,
        direction: Direction::UpIsGood,
        description: "Net profit as a share of revenue (a ratio of the period's sums).",
    },
    BuiltinKpi {
        name: "cash_flow",
        display_name: "Cash flow",
        unit: None,
        aggregation: Some(Aggregation::Sum),
        direction: Direction::UpIsGood,
        description: "Sum of cash flow over the period, in the base currency.",
    },
    BuiltinKpi {
        name: "open_pipeline",
        display_name: "Open pipeline",
        unit: None,
        aggregation: Some(Aggregation::Last),
        direction: Direction::UpIsGood,
        description: "Value of the leads still active at the end of the period.",
    },
    BuiltinKpi {
        name: "win_rate",
        display_name: "Win rate",
        unit: Some("%"),
        aggregation: None,
        direction: Direction::UpIsGood,
        description: "Leads won as a share of leads closed (won or lost) in the period.",
    },
];

/// The built-in KPI of this name, if any.
pub fn builtin(name: &str) -> Option<&'static BuiltinKpi> {
    BUILTIN_KPIS.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_round_trip_through_their_names() {
        for a in Aggregation::ALL {
            assert_eq!(a.as_str().parse::<Aggregation>(), Ok(a));
        }
        for d in [Direction::UpIsGood, Direction::DownIsGood] {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
        }
        assert!("avg".parse::<Aggregation>().is_err());
        assert!("up".parse::<Direction>().is_err());
    }

    #[test]
    fn builtins_are_found_by_name() {
        assert_eq!(builtin("margin").map(|k| k.unit), Some(Some("%")));
        assert!(builtin("hours").is_none());
    }
}
