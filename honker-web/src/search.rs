//! What a search selects, for the pages and the actions alike: the search
//! text a request carries, and the dead jobs a queue and a search name.

use honker_actors::core::DeadFilter;

/// The search text of a request's `q`, trimmed; `None` when there is none.
pub(crate) fn text(q: Option<&str>) -> Option<&str> {
    q.map(str::trim).filter(|q| !q.is_empty())
}

/// The dead jobs of `queue` (every queue: `None`) whose payload holds
/// `search` (any: `None`).
pub(crate) fn dead_jobs(queue: Option<&str>, search: Option<&str>) -> DeadFilter {
    let mut filter = DeadFilter::default();
    if let Some(q) = queue {
        filter = filter.queue(q);
    }
    if let Some(text) = search {
        filter = filter.payload_contains(text);
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_search_is_none_and_a_filter_takes_what_is_given() {
        assert_eq!(text(Some("  ann@ ")), Some("ann@"));
        assert_eq!(text(Some("   ")), None);
        assert_eq!(text(None), None);
        let f = dead_jobs(Some("mail"), Some("ann@"));
        assert_eq!(
            (f.queue.as_deref(), f.payload_contains.as_deref()),
            (Some("mail"), Some("ann@"))
        );
        assert_eq!(dead_jobs(None, None), DeadFilter::default());
    }
}
