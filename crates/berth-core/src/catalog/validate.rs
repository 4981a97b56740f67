//! Rules across entries: unique names and aliases, replacements and bases that name an entry,
//! no base cycles, one owner per repository; and the warnings that depend on `now`.

use foldhash::{HashMap, HashMapExt as _};

use chrono::{DateTime, Utc};

use super::diagnostic::Diagnostics;
use super::model::State;
use super::read::Draft;
use super::suggest::{SUGGESTIONS_MAX, closest};
use super::yaml::Position;

/// Checks `drafts` together (source order decides which of two duplicates is reported) and
/// returns those that survive: one per canonical name.
pub fn validate(
    drafts: Vec<Draft>,
    now: DateTime<Utc>,
    diagnostics: &mut Diagnostics,
) -> Vec<Draft> {
    let drafts = unique_names(drafts, diagnostics);
    let by_name: HashMap<&str, &Draft> = drafts
        .iter()
        .map(|draft| (draft.entry.name.as_str(), draft))
        .collect();
    let aliases = unique_aliases(&drafts, &by_name, diagnostics);
    let name_of = |text: &str| aliases.get(text).copied();
    for draft in &drafts {
        check_replacement(draft, &by_name, &name_of, now, diagnostics);
        check_base(draft, &by_name, &name_of, now, diagnostics);
        check_retiring(draft, now, diagnostics);
    }
    check_base_cycles(&drafts, &by_name, diagnostics);
    check_repositories(&drafts, diagnostics);
    drafts
}

fn unique_names(drafts: Vec<Draft>, diagnostics: &mut Diagnostics) -> Vec<Draft> {
    let mut first: HashMap<&str, &Draft> = HashMap::with_capacity(drafts.len());
    let mut repeated = vec![false; drafts.len()];
    for (index, draft) in drafts.iter().enumerate() {
        let Some(original) = first.get(draft.entry.name.as_str()) else {
            first.insert(&draft.entry.name, draft);
            continue;
        };
        let message = format!(
            "duplicate canonical name {:?} (first at {})",
            draft.entry.name,
            location(original, original.at.name)
        );
        diagnostics.error(&draft.at.location(draft.at.name), &draft.path(), message);
        repeated[index] = true;
    }
    drafts
        .into_iter()
        .zip(repeated)
        .filter_map(|(draft, repeated)| (!repeated).then_some(draft))
        .collect()
}

/// Reports aliases that repeat a canonical name or another entry's alias; returns alias → the
/// canonical name of its entry.
fn unique_aliases<'d>(
    drafts: &'d [Draft],
    by_name: &HashMap<&str, &Draft>,
    diagnostics: &mut Diagnostics,
) -> HashMap<&'d str, &'d str> {
    let mut owners: HashMap<&'d str, &'d Draft> = HashMap::new();
    for draft in drafts {
        for (alias, (position, index)) in draft.entry.aliases.iter().zip(&draft.at.aliases) {
            let at = draft.at.location(*position);
            let field = &format!("{}[{index}]", draft.field("aliases"));
            if let Some(named) = by_name.get(alias.as_str()) {
                let message = if named.entry.name == draft.entry.name {
                    format!("alias {alias:?} is the entry's own name")
                } else {
                    format!(
                        "alias {alias:?} is the canonical name of another entry ({})",
                        location(named, named.at.name)
                    )
                };
                diagnostics.error(&at, field, message);
                continue;
            }
            if let Some(owner) = owners.get(alias.as_str()) {
                diagnostics.error(
                    &at,
                    field,
                    format!(
                        "alias {alias:?} is already an alias of {:?} ({})",
                        owner.entry.name,
                        location(owner, owner.at.name)
                    ),
                );
                continue;
            }
            owners.insert(alias, draft);
        }
    }
    owners
        .into_iter()
        .map(|(alias, draft)| (alias, draft.entry.name.as_str()))
        .collect()
}

fn location(draft: &Draft, position: Position) -> String {
    format!("{}:{}:{}", draft.at.file, position.line, position.column)
}

/// How a name given in `replacement` or `base` failed to name an entry.
fn unknown_reference<'a>(
    text: &str,
    by_name: &HashMap<&'a str, &Draft>,
    name_of: &dyn Fn(&str) -> Option<&'a str>,
) -> String {
    if let Some(canonical) = name_of(text) {
        return format!("{text:?} is an alias of {canonical:?}; name the entry itself");
    }
    let mut message = format!("{text:?} names no entry in the catalog");
    let suggestions = closest(text, by_name.keys().copied(), SUGGESTIONS_MAX);
    if !suggestions.is_empty() {
        message.push_str(&format!("; did you mean {}?", suggestions.join(", ")));
    }
    message
}

fn check_replacement<'a>(
    draft: &Draft,
    by_name: &HashMap<&'a str, &Draft>,
    name_of: &dyn Fn(&str) -> Option<&'a str>,
    now: DateTime<Utc>,
    diagnostics: &mut Diagnostics,
) {
    let (Some(replacement), Some(position)) =
        (&draft.entry.lifecycle.replacement, draft.at.replacement)
    else {
        return;
    };
    let at = draft.at.location(position);
    let field = draft.field("replacement");
    if *replacement == draft.entry.name {
        diagnostics.error(&at, &field, "an entry cannot replace itself");
        return;
    }
    let Some(target) = by_name.get(replacement.as_str()) else {
        diagnostics.error(
            &at,
            &field,
            unknown_reference(replacement, by_name, name_of),
        );
        return;
    };
    let target_lifecycle = &target.entry.lifecycle;
    if target_lifecycle.state == State::Eol {
        diagnostics.error(
            &at,
            &field,
            format!("replacement {replacement:?} is itself eol"),
        );
        return;
    }
    let effective = target_lifecycle.at(now);
    if effective.state != State::Stable {
        let mut message = format!("replacement {replacement:?} is itself {}", effective.state);
        if let Some(next) = &target_lifecycle.replacement {
            message.push_str(&format!("; point at {next:?} instead"));
        }
        diagnostics.warning(&at, &field, message);
    } else if let (Some(target_eol), Some(own_eol)) =
        (target_lifecycle.eol_on, draft.entry.lifecycle.eol_on)
        && target_eol <= own_eol
    {
        diagnostics.warning(
            &at,
            &field,
            format!("replacement {replacement:?} reaches end of life on {target_eol}, no later than this entry ({own_eol})"),
        );
    }
}

fn check_base<'a>(
    draft: &Draft,
    by_name: &HashMap<&'a str, &Draft>,
    name_of: &dyn Fn(&str) -> Option<&'a str>,
    now: DateTime<Utc>,
    diagnostics: &mut Diagnostics,
) {
    let (Some(base), Some(position)) = (&draft.entry.base, draft.at.base) else {
        return;
    };
    let at = draft.at.location(position);
    let field = draft.field("base");
    if *base == draft.entry.name {
        diagnostics.error(&at, &field, "an image cannot be built on itself");
        return;
    }
    let Some(target) = by_name.get(base.as_str()) else {
        diagnostics.error(&at, &field, unknown_reference(base, by_name, name_of));
        return;
    };
    let effective = target.entry.lifecycle.at(now);
    if effective.state == State::Eol && draft.entry.lifecycle.at(now).state != State::Eol {
        diagnostics.warning(&at, &field, format!("built on {base:?}, which is eol"));
    }
}

fn check_retiring(draft: &Draft, now: DateTime<Utc>, diagnostics: &mut Diagnostics) {
    let lifecycle = &draft.entry.lifecycle;
    if !lifecycle.is_retiring() || lifecycle.replacement.is_some() {
        return;
    }
    let effective = lifecycle.at(now);
    let status = match (effective.state, effective.next) {
        (State::Stable, Some(next)) => format!("becomes {} on {}", next.state, next.on),
        (state, _) => format!("is {state}"),
    };
    let at = draft.at.location(draft.at.name);
    diagnostics.warning(
        &at,
        &draft.path(),
        format!("{status} but names no replacement for its users"),
    );
}

/// Follows `base` links; each cycle is reported once, at its member that sorts first.
fn check_base_cycles(
    drafts: &[Draft],
    by_name: &HashMap<&str, &Draft>,
    diagnostics: &mut Diagnostics,
) {
    let mut reported: Vec<Vec<&str>> = Vec::new();
    for draft in drafts {
        let mut chain: Vec<&str> = vec![draft.entry.name.as_str()];
        let mut current = draft;
        while let Some(base) = current.entry.base.as_deref() {
            let Some(next) = by_name.get(base) else { break };
            if base == current.entry.name {
                break; // reported as "built on itself"
            }
            if let Some(start) = chain.iter().position(|name| *name == base) {
                let mut cycle: Vec<&str> = chain[start..].to_vec();
                let smallest = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, name)| **name)
                    .map_or(0, |(i, _)| i);
                cycle.rotate_left(smallest);
                if !reported.contains(&cycle) {
                    let first = by_name[cycle[0]];
                    let path = cycle
                        .iter()
                        .chain(cycle.first())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" → ");
                    if let Some(position) = first.at.base {
                        diagnostics.error(
                            &first.at.location(position),
                            &first.field("base"),
                            format!("base cycle: {path}"),
                        );
                    }
                    reported.push(cycle);
                }
                break;
            }
            chain.push(base);
            current = next;
        }
    }
}

/// A repository belongs to one entry, so that reverse resolution has one answer.
fn check_repositories(drafts: &[Draft], diagnostics: &mut Diagnostics) {
    let mut owners: HashMap<(&str, &str), (&Draft, Option<&str>)> = HashMap::new();
    for draft in drafts {
        for (variant, image) in draft.entry.images() {
            let key = (image.registry(), image.repository());
            match owners.get(&key) {
                Some((owner, _)) if owner.entry.name == draft.entry.name => {}
                Some((owner, owner_variant)) => {
                    let position = draft
                        .at
                        .images
                        .iter()
                        .find(|(name, _)| name.as_deref() == variant)
                        .map_or(draft.at.name, |(_, position)| *position);
                    let field = match variant {
                        Some(variant) => draft.field(&format!("variants.{variant}.image")),
                        None => draft.field("image"),
                    };
                    let owner_part = match owner_variant {
                        Some(name) => format!("{:?} (variant {name})", owner.entry.name),
                        None => format!("{:?}", owner.entry.name),
                    };
                    diagnostics.error(
                        &draft.at.location(position),
                        &field,
                        format!("repository {} is already the image of {owner_part}; one repository belongs to one entry", image.familiar()),
                    );
                }
                None => {
                    owners.insert(key, (draft, variant));
                }
            }
        }
    }
}
