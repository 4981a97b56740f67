//! Promotion rules: from one channel to another, when (a schedule or only by hand), after how
//! long on the source (soak), past which gates, inside which windows and outside which freezes;
//! and the YAML file operators write them in, read with every problem reported at once.
//!
//! ```yaml
//! promotions:
//!   - from: staging
//!     to: latest
//!     images: [python3.11]          # default: every entry that publishes both channels
//!     schedule: "0 10 * * WED"      # or `manual`
//!     time_zone: Europe/Copenhagen  # the zone of the schedule and the windows; default UTC
//!     soak: 2d                      # 90m, 12h, 2d; default 0
//!     gates: [not-retired, facts-known, signed, tested]   # default [not-retired]
//!     windows:                      # default: any time
//!       - {days: [mon, tue, wed, thu], from: "09:00", until: "16:00"}
//!     freezes:
//!       - {from: 2026-12-18T00:00:00Z, until: 2027-01-04T00:00:00Z, reason: year-end freeze}
//!     first_publish: immediate      # or scheduled (default)
//!     stamp: true                   # also tag latest-20261122T0900Z (default false)
//!   - from: latest
//!     to: latest
//!     to_variant: public            # the target is a tag of another variant of the entry:
//!     from_variant: internal        #   another repository or registry (blobs are copied);
//!                                   #   the source: `from_variant`, else the default image
//! ```

use chrono::{DateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use super::schedule::Schedule;
use crate::catalog::diagnostic::{Diagnostic, Diagnostics};
use crate::catalog::read::{Path, Walker};
use crate::catalog::yaml::Node;
use crate::catalog::{CatalogEntry, parse_moment};
use crate::reference::Tag;

/// How a rule is set off.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Only when someone runs `berth promote`.
    Manual,
    /// At each slot of the schedule (and by hand too). Boxed: a parsed cron is large.
    Scheduled(Box<Schedule>),
}

/// A check the candidate digest must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// The catalog entry is neither deprecated nor eol at `now` (its effective state).
    NotRetired,
    /// berth has read the candidate's facts (platforms, OS, layers) into the store.
    FactsKnown,
    /// The candidate carries a cosign signature a trusted key verified when berth synced it.
    Signed,
    /// The candidate's tests passed: a pipeline's record (`berth provenance record`) or a
    /// test-result attestation a trusted key verified.
    Tested,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::NotRetired => "not-retired",
            Gate::FactsKnown => "facts-known",
            Gate::Signed => "signed",
            Gate::Tested => "tested",
        }
    }

    pub fn parse(text: &str) -> Option<Gate> {
        [
            Gate::NotRetired,
            Gate::FactsKnown,
            Gate::Signed,
            Gate::Tested,
        ]
        .into_iter()
        .find(|gate| gate.as_str() == text)
    }
}

/// When a brand-new variant (nothing on the target channel yet) gets its first digest there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstPublish {
    /// Like any later promotion: on schedule, after the soak, inside a window.
    #[default]
    Scheduled,
    /// At once: developers can use the target channel right away. Gates still apply; schedule,
    /// soak, windows and freezes do not (nobody runs the target yet, so nothing can break).
    Immediate,
}

/// A weekly window promotions may happen in, read in the rule's time zone: `from` ≤ time <
/// `until` on one of `days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub from: NaiveTime,
    pub until: NaiveTime,
}

impl Window {
    pub fn contains(&self, moment: DateTime<Utc>, zone: Tz) -> bool {
        let local = moment.with_timezone(&zone);
        let time = local.time();
        self.days.contains(&chrono::Datelike::weekday(&local))
            && self.from <= time
            && time < self.until
    }
}

/// A period without promotions: `from` ≤ moment < `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Shown to whoever is blocked by it.
    pub reason: String,
}

/// From one channel to another: of the same image variant, or (with `to_variant`) from one
/// variant of an entry to another, whose image may live in another repository or registry.
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionRule {
    pub from: Tag,
    pub to: Tag,
    /// The variant whose `from` channel is the source, when the target is another variant;
    /// `None`: the entry's default image (or the variant the command names).
    pub from_variant: Option<String>,
    /// The variant (of the same catalog entry) whose `to` channel is the target; `None`: the
    /// source's own image. Its image may be in another repository or registry: then a promotion
    /// copies the blobs first.
    pub to_variant: Option<String>,
    /// The entries the rule applies to; empty: every entry that publishes both channels.
    pub images: Vec<String>,
    pub trigger: Trigger,
    /// The zone windows are read in (and the schedule's).
    pub zone: Tz,
    /// How long a digest must have been on `from` before it may move on.
    pub soak: TimeDelta,
    pub gates: Vec<Gate>,
    /// Promotions happen only inside one of these; none: any time.
    pub windows: Vec<Window>,
    pub freezes: Vec<Freeze>,
    pub first_publish: FirstPublish,
    /// Also publish an immutable tag per promotion (`latest-20261122T0900Z`), so every past
    /// state of the channel stays pullable.
    pub stamp: bool,
}

impl PromotionRule {
    /// A rule promoting by hand only, with the default gate: what `berth promote` uses when no
    /// rules file names the pair.
    pub fn manual(from: Tag, to: Tag) -> PromotionRule {
        PromotionRule {
            from,
            to,
            from_variant: None,
            to_variant: None,
            images: Vec::new(),
            trigger: Trigger::Manual,
            zone: Tz::UTC,
            soak: TimeDelta::zero(),
            gates: vec![Gate::NotRetired],
            windows: Vec::new(),
            freezes: Vec::new(),
            first_publish: FirstPublish::Scheduled,
            stamp: false,
        }
    }

    /// Whether the rule moves `entry`'s channels.
    pub fn applies_to(&self, entry: &CatalogEntry) -> bool {
        let named = self.images.is_empty()
            || self
                .images
                .iter()
                .any(|name| *name == entry.name || entry.aliases.contains(name));
        named && entry.channels.contains(&self.from) && entry.channels.contains(&self.to)
    }
}

/// A rules file: its promotion rules in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RulesFile {
    pub promotions: Vec<PromotionRule>,
}

const FILE_FIELDS: &[&str] = &["promotions"];
const RULE_FIELDS: &[&str] = &[
    "from",
    "to",
    "images",
    "schedule",
    "time_zone",
    "soak",
    "gates",
    "windows",
    "freezes",
    "first_publish",
    "stamp",
    "from_variant",
    "to_variant",
];
const WINDOW_FIELDS: &[&str] = &["days", "from", "until"];
const FREEZE_FIELDS: &[&str] = &["from", "until", "reason"];

impl RulesFile {
    /// Reads a rules file; `file` names it in diagnostics. Every problem is reported.
    pub fn parse(file: &str, text: &str) -> Result<RulesFile, Vec<Diagnostic>> {
        let mut diagnostics = Diagnostics::default();
        let mut walker = Walker {
            file,
            diagnostics: &mut diagnostics,
        };
        let mut rules = RulesFile::default();
        let root = Path::Root;
        if let Some(node) = walker.document(text)
            && let Some(fields) = walker.fields(&node, &root, FILE_FIELDS)
            && let Some(list) = fields.get("promotions")
        {
            let path = root.field("promotions");
            for (index, item) in walker
                .sequence(list.value, &path)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(rule) = read_rule(&mut walker, item, &path.index(index)) {
                    rules.promotions.push(rule);
                }
            }
        }
        if diagnostics.has_errors() {
            return Err(diagnostics.into_sorted());
        }
        Ok(rules)
    }

    /// The rule moving `entry` from `from` to `to` within one image, if one is written.
    pub fn rule_for(&self, entry: &CatalogEntry, from: &Tag, to: &Tag) -> Option<&PromotionRule> {
        self.rule_to(entry, from, to, None)
    }

    /// The rule moving `entry` from `from` to `to` of variant `to_variant` (`None`: within one
    /// image), if one is written.
    pub fn rule_to(
        &self,
        entry: &CatalogEntry,
        from: &Tag,
        to: &Tag,
        to_variant: Option<&str>,
    ) -> Option<&PromotionRule> {
        self.promotions.iter().find(|rule| {
            rule.from == *from
                && rule.to == *to
                && rule.to_variant.as_deref() == to_variant
                && rule.applies_to(entry)
        })
    }
}

fn read_rule(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<PromotionRule> {
    let fields = walker.fields(node, path, RULE_FIELDS)?;
    let mut ok = true;
    let mut required = |walker: &mut Walker<'_>, name: &'static str| -> Option<Tag> {
        let Some(field) = fields.get(name) else {
            walker.error(node.position, path, format!("a promotion needs `{name}`"));
            ok = false;
            return None;
        };
        let value = parse_field(walker, field.value, &path.field(name), super::channel_tag);
        ok &= value.is_some();
        value
    };
    let from = required(walker, "from");
    let to = required(walker, "to");
    let mut variant = |walker: &mut Walker<'_>, name: &'static str| -> Option<String> {
        let field = fields.get(name)?;
        let value = walker.name(field.value, &path.field(name));
        ok &= value.is_some();
        value
    };
    let from_variant = variant(walker, "from_variant");
    let to_variant = variant(walker, "to_variant");
    if let (Some(from), Some(to)) = (&from, &to)
        && from == to
        && (to_variant.is_none() || to_variant == from_variant)
    {
        walker.error(node.position, path, format!("promotes {from} to itself"));
        ok = false;
    }
    if from_variant.is_some() && to_variant.is_none() {
        walker.error(
            node.position,
            path,
            "`from_variant` names the source of a promotion to another variant; add `to_variant`"
                .to_string(),
        );
        ok = false;
    }
    // A missing or bad `from`/`to` (already reported, so `ok` is false) does not stop the
    // reading: the other fields are checked too, and every problem is reported at once.
    let placeholder = || Tag::parse("latest").ok();
    let (Some(from), Some(to)) = (from.or_else(placeholder), to.or_else(placeholder)) else {
        return None;
    };
    let mut rule = PromotionRule::manual(from, to);
    rule.from_variant = from_variant;
    rule.to_variant = to_variant;
    let zone = match fields.get("time_zone") {
        Some(field) => parse_field(walker, field.value, &path.field("time_zone"), |text| {
            text.parse::<Tz>()
                .map_err(|_| format!("{text:?} is not an IANA time zone (Europe/Copenhagen, UTC)"))
        }),
        None => Some(Tz::UTC),
    };
    ok &= zone.is_some();
    rule.zone = zone.unwrap_or(Tz::UTC);
    for (name, field) in fields.iter() {
        let at = path.field(name);
        let value = field.value;
        let read = match name {
            "from" | "to" | "time_zone" | "from_variant" | "to_variant" => true,
            "images" => match walker.sequence(value, &at) {
                Some(items) => {
                    for (index, item) in items.iter().enumerate() {
                        if let Some(name) = walker.name(item, &at.index(index)) {
                            rule.images.push(name);
                        }
                    }
                    true
                }
                None => false,
            },
            "schedule" => {
                let zone = rule.zone.name();
                let trigger = parse_field(walker, value, &at, |text| match text {
                    "manual" => Ok(Trigger::Manual),
                    expression => Schedule::parse(expression, zone)
                        .map(|schedule| Trigger::Scheduled(Box::new(schedule))),
                });
                trigger.map(|trigger| rule.trigger = trigger).is_some()
            }
            "soak" => parse_field(walker, value, &at, parse_span)
                .map(|soak| rule.soak = soak)
                .is_some(),
            "gates" => {
                rule.gates.clear();
                let items = walker.sequence(value, &at).unwrap_or_default();
                for (index, item) in items.iter().enumerate() {
                    let gate = parse_field(walker, item, &at.index(index), |text| {
                        Gate::parse(text).ok_or_else(|| {
                            format!(
                                "unknown gate {text:?}; expected not-retired, facts-known, \
                                 signed or tested"
                            )
                        })
                    });
                    if let Some(gate) = gate
                        && !rule.gates.contains(&gate)
                    {
                        rule.gates.push(gate);
                    }
                }
                true
            }
            "windows" => {
                let items = walker.sequence(value, &at).unwrap_or_default();
                for (index, item) in items.iter().enumerate() {
                    if let Some(window) = read_window(walker, item, &at.index(index)) {
                        rule.windows.push(window);
                    }
                }
                true
            }
            "freezes" => {
                let items = walker.sequence(value, &at).unwrap_or_default();
                for (index, item) in items.iter().enumerate() {
                    if let Some(freeze) = read_freeze(walker, item, &at.index(index)) {
                        rule.freezes.push(freeze);
                    }
                }
                true
            }
            "first_publish" => parse_field(walker, value, &at, |text| match text {
                "immediate" => Ok(FirstPublish::Immediate),
                "scheduled" => Ok(FirstPublish::Scheduled),
                _ => Err(format!(
                    "unknown first_publish {text:?}; expected immediate or scheduled"
                )),
            })
            .map(|first| rule.first_publish = first)
            .is_some(),
            "stamp" => parse_field(walker, value, &at, |text| match text {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("{text:?} is not true or false")),
            })
            .map(|stamp| rule.stamp = stamp)
            .is_some(),
            other => unreachable!("field {other} is in RULE_FIELDS but not read"),
        };
        ok &= read;
    }
    ok.then_some(rule)
}

pub(crate) fn read_window(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
) -> Option<Window> {
    let fields = walker.fields(node, path, WINDOW_FIELDS)?;
    let mut days = Vec::new();
    if let Some(field) = fields.get("days") {
        let at = path.field("days");
        for (index, item) in walker
            .sequence(field.value, &at)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            days.extend(parse_field(walker, item, &at.index(index), |text| {
                text.parse::<Weekday>()
                    .map_err(|_| format!("{text:?} is not a day of the week (mon, tue, ...)"))
            }));
        }
    } else {
        days = vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
    }
    let mut time = |name: &'static str| {
        let Some(field) = fields.get(name) else {
            walker.error(node.position, path, format!("a window needs `{name}`"));
            return None;
        };
        parse_field(walker, field.value, &path.field(name), |text| {
            NaiveTime::parse_from_str(text, "%H:%M")
                .map_err(|_| format!("{text:?} is not a time of day (HH:MM)"))
        })
    };
    let (from, until) = (time("from")?, time("until")?);
    if from >= until {
        let message = format!(
            "the window ends ({until}) before it starts ({from}); split a window across midnight in two"
        );
        walker.error(node.position, path, message);
        return None;
    }
    Some(Window { days, from, until })
}

fn read_freeze(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Freeze> {
    let fields = walker.fields(node, path, FREEZE_FIELDS)?;
    let mut moment = |name: &'static str| {
        let Some(field) = fields.get(name) else {
            walker.error(node.position, path, format!("a freeze needs `{name}`"));
            return None;
        };
        parse_field(walker, field.value, &path.field(name), parse_moment)
    };
    let (from, until) = (moment("from"), moment("until"));
    let reason = match fields.get("reason") {
        Some(field) => walker.text(field.value, &path.field("reason")),
        None => None,
    };
    let (from, until) = (from?, until?);
    if from >= until {
        walker.error(node.position, path, "the freeze ends before it starts");
        return None;
    }
    Some(Freeze {
        from,
        until,
        reason: reason.unwrap_or_else(|| "freeze".to_string()),
    })
}

/// Reads a required text value with `parse`, reporting its error at the value.
pub(crate) fn parse_field<T>(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let text = walker.required_text(node, path)?;
    match parse(&text) {
        Ok(value) => Some(value),
        Err(message) => {
            walker.error(node.position, path, message);
            None
        }
    }
}

/// A span of time in berth's one duration syntax (`crate::duration`): `90m`, `12h`, `2d`, `1w`.
pub fn parse_span(text: &str) -> Result<TimeDelta, String> {
    let duration = crate::duration::parse(text)?;
    TimeDelta::from_std(duration).map_err(|_| format!("{text:?} is too long a duration"))
}
