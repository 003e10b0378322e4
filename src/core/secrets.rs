//! The secret values a host has read, by name. Both hosts read each name once (a Worker's
//! secrets are fixed for its isolate's life, a process's environment for its own) and hand out
//! shared copies: a request asks for several, and a copy per ask was an allocation each.

use std::cell::RefCell;
use std::rc::Rc;

/// One name read, and its value (`None`: not set).
type Entry = (Box<str>, Option<Rc<str>>);

/// Names and values read so far. A short list, searched in order: routes.toml names a handful
/// of secrets, and comparing a name with each costs less than hashing it.
#[derive(Debug, Default)]
pub struct SecretCache(RefCell<Vec<Entry>>);

impl SecretCache {
    /// An empty cache.
    pub const fn new() -> Self {
        Self(RefCell::new(Vec::new()))
    }

    /// `name`'s value: the one read before, or what `read` gives now, which is kept.
    pub fn get_or_read(
        &self,
        name: &str,
        read: impl FnOnce() -> Option<String>,
    ) -> Option<Rc<str>> {
        if let Some((_, value)) = self.0.borrow().iter().find(|(known, _)| **known == *name) {
            return value.clone();
        }
        let value = read().map(Rc::from);
        self.0.borrow_mut().push((name.into(), value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_read_once_and_unset_is_remembered() {
        let cache = SecretCache::new();
        let reads = std::cell::Cell::new(0);
        let read = |value: Option<&str>| {
            reads.set(reads.get() + 1);
            value.map(str::to_owned)
        };
        assert_eq!(
            cache.get_or_read("A", || read(Some("a-value"))).as_deref(),
            Some("a-value")
        );
        assert_eq!(
            cache.get_or_read("A", || read(Some("other"))).as_deref(),
            Some("a-value")
        );
        assert_eq!(cache.get_or_read("B", || read(None)), None);
        assert_eq!(cache.get_or_read("B", || read(Some("late"))), None);
        assert_eq!(reads.get(), 2);
    }
}
