//! Which image a channel operation is about: a catalog entry, its variant, and the repository
//! that variant is published to.

use berth_core::catalog::{Catalog, CatalogEntry, ImageName};

/// A catalog image variant whose channels berth moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The canonical name (an alias given on the command line is resolved to it).
    pub name: String,
    /// `None`: the entry's default image.
    pub variant: Option<String>,
    pub image: ImageName,
}

impl Subject {
    /// Reads `NAME[/variant]` against the catalog: a variant's own image, else the entry's
    /// default image, else its only variant. Errors are for people.
    pub fn find<'c>(
        catalog: &'c Catalog,
        text: &str,
    ) -> Result<(Subject, &'c CatalogEntry), String> {
        let (name, variant) = match text.split_once('/') {
            Some((name, variant)) => (name, Some(variant)),
            None => (text, None),
        };
        let Some(entry) = catalog.get(name) else {
            let suggestions = catalog.suggestions(name);
            let mut message = format!("{name:?} is not in the catalog");
            if !suggestions.is_empty() {
                message.push_str(&format!("; did you mean {}?", suggestions.join(", ")));
            }
            return Err(message);
        };
        let (variant, image) = match variant {
            Some(variant) => match entry.variants.get(variant) {
                Some(found) => (Some(variant.to_string()), found.image.clone()),
                None => {
                    let known: Vec<&str> = entry.variants.keys().map(String::as_str).collect();
                    return Err(format!(
                        "{} has no variant {variant:?} (it has: {})",
                        entry.name,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
            },
            None => match (&entry.image, entry.variants.len()) {
                (Some(image), _) => (None, image.clone()),
                (None, 1) => {
                    let (variant, found) = entry.variants.iter().next().expect("one variant");
                    (Some(variant.clone()), found.image.clone())
                }
                (None, _) => {
                    let known: Vec<&str> = entry.variants.keys().map(String::as_str).collect();
                    return Err(format!(
                        "{} has no default image; name a variant: {}",
                        entry.name,
                        known
                            .iter()
                            .map(|variant| format!("{}/{variant}", entry.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            },
        };
        let subject = Subject {
            name: entry.name.clone(),
            variant,
            image,
        };
        Ok((subject, entry))
    }

    /// The entry's `variant` (`None`: its default image) as a subject: the target of a rule
    /// with `to_variant`, the source of one with `from_variant`.
    pub fn of(entry: &CatalogEntry, variant: Option<&str>) -> Result<Subject, String> {
        let image = match variant {
            Some(variant) => entry.variants.get(variant).map(|found| found.image.clone()),
            None => entry.image.clone(),
        };
        let Some(image) = image else {
            return Err(match variant {
                Some(variant) => format!("{} has no variant {variant:?}", entry.name),
                None => format!("{} has no default image", entry.name),
            });
        };
        Ok(Subject {
            name: entry.name.clone(),
            variant: variant.map(str::to_string),
            image,
        })
    }

    /// `python3.11/jobs`, or `bookworm` for a default image.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{variant}", self.name),
            None => self.name.clone(),
        }
    }
}
