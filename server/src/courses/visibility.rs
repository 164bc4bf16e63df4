//! When students may see a section: published, released (their own release
//! time if they have an exception, else the section's) and not yet closed.
//! A file or folder with its own rule ([`MaterialRelease`]) is seen only
//! when its section is and the rule is open too (a rule only narrows; a
//! student's exception overrides its times as it does the section's).
//! Pure functions of the catalog and a clock, so the rules are tested alone.

use campus_protocol::SectionState;

use crate::store::{MaterialRelease, Section, SectionException};

/// The release and close times that apply to one student (or, with no
/// exception, to every student).
pub fn times(
    section: &Section,
    exception: Option<&SectionException>,
) -> (Option<i64>, Option<i64>) {
    let release = exception
        .and_then(|e| e.release_at_ms)
        .or(section.release_at_ms);
    let close = exception
        .and_then(|e| e.close_at_ms)
        .or(section.close_at_ms);
    (release, close)
}

/// Where `section` stands at `now_ms` for a student with `exception`.
pub fn state(section: &Section, exception: Option<&SectionException>, now_ms: i64) -> SectionState {
    if !section.published {
        return SectionState::Draft;
    }
    state_at(times(section, exception), now_ms)
}

/// The release and close times of a per-file rule for one student: the
/// later release and earlier close of the rule and its section, unless the
/// student's exception sets its own.
pub fn release_times(
    section: &Section,
    rule: &MaterialRelease,
    exception: Option<&SectionException>,
) -> (Option<i64>, Option<i64>) {
    let later = match (section.release_at_ms, rule.release_at_ms) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let earlier = match (section.close_at_ms, rule.close_at_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (
        exception.and_then(|e| e.release_at_ms).or(later),
        exception.and_then(|e| e.close_at_ms).or(earlier),
    )
}

/// Where a per-file rule stands at `now_ms` for a student with `exception`.
pub fn release_state(
    section: &Section,
    rule: &MaterialRelease,
    exception: Option<&SectionException>,
    now_ms: i64,
) -> SectionState {
    if !section.published || !rule.published {
        return SectionState::Draft;
    }
    state_at(release_times(section, rule, exception), now_ms)
}

/// What one student sees of an open section: its folder minus these paths
/// (relative to the folder) and everything under them.
#[derive(Debug, Default)]
pub struct Hidden<'a>(pub Vec<&'a str>);

impl Hidden<'_> {
    /// Does the student see `rel` (a path inside the section's folder, `""` the folder)?
    pub fn shows(&self, rel: &str) -> bool {
        !self.0.iter().any(|h| {
            rel == *h || (rel.starts_with(h) && rel.as_bytes().get(h.len()) == Some(&b'/'))
        })
    }

    /// Does `rel` hold something hidden (so it cannot be shown whole)?
    pub fn inside(&self, rel: &str) -> bool {
        self.0.iter().any(|h| {
            rel.is_empty() || (h.starts_with(rel) && h.as_bytes().get(rel.len()) == Some(&b'/'))
        })
    }
}

/// What a student with `exception` sees of `section` at `now_ms`: `None`
/// when the section is not open to them, else what its rules hide.
pub fn student_view<'a>(
    section: &Section,
    rules: &'a [MaterialRelease],
    exception: Option<&SectionException>,
    now_ms: i64,
) -> Option<Hidden<'a>> {
    if state(section, exception, now_ms) != SectionState::Open {
        return None;
    }
    Some(Hidden(
        rules
            .iter()
            .filter(|r| release_state(section, r, exception, now_ms) != SectionState::Open)
            .map(|r| r.path.as_str())
            .collect(),
    ))
}

fn state_at((release, close): (Option<i64>, Option<i64>), now_ms: i64) -> SectionState {
    if release.is_some_and(|r| now_ms < r) {
        SectionState::Scheduled
    } else if close.is_some_and(|c| now_ms >= c) {
        SectionState::Closed
    } else {
        SectionState::Open
    }
}

/// The first release or close time after `now_ms` among published sections,
/// their exceptions and published per-file rules: when some student's view
/// changes next.
pub fn next_boundary<'a>(
    sections: impl IntoIterator<Item = &'a Section>,
    exceptions: impl IntoIterator<Item = &'a SectionException>,
    rules: impl IntoIterator<Item = &'a MaterialRelease>,
    now_ms: i64,
) -> Option<i64> {
    let from_sections = sections
        .into_iter()
        .filter(|s| s.published)
        .flat_map(|s| [s.release_at_ms, s.close_at_ms]);
    let from_exceptions = exceptions
        .into_iter()
        .flat_map(|e| [e.release_at_ms, e.close_at_ms]);
    let from_rules = rules
        .into_iter()
        .filter(|r| r.published)
        .flat_map(|r| [r.release_at_ms, r.close_at_ms]);
    from_sections
        .chain(from_exceptions)
        .chain(from_rules)
        .flatten()
        .filter(|&t| t > now_ms)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(published: bool, release: Option<i64>, close: Option<i64>) -> Section {
        Section {
            id: 1,
            course_id: 1,
            folder: "week1".into(),
            title: "Week 1".into(),
            kind: "notes".into(),
            position: 1,
            published,
            release_at_ms: release,
            close_at_ms: close,
        }
    }

    fn exception(release: Option<i64>, close: Option<i64>) -> SectionException {
        SectionException {
            section_id: 1,
            user_id: 2,
            release_at_ms: release,
            close_at_ms: close,
        }
    }

    #[test]
    fn release_then_close() {
        use SectionState::*;
        let s = section(true, Some(100), Some(200));
        assert_eq!(state(&s, None, 99), Scheduled);
        assert_eq!(state(&s, None, 100), Open, "open from the release instant");
        assert_eq!(state(&s, None, 199), Open);
        assert_eq!(
            state(&s, None, 200),
            Closed,
            "closed from the close instant"
        );
        assert_eq!(state(&section(false, None, None), None, 0), Draft);
        assert_eq!(
            state(&section(false, Some(1), None), None, 50),
            Draft,
            "a draft never opens"
        );
        assert_eq!(state(&section(true, None, None), None, i64::MIN), Open);
    }

    #[test]
    fn exceptions_replace_only_what_they_set() {
        use SectionState::*;
        let s = section(true, Some(100), Some(200));
        let early = exception(Some(50), None);
        assert_eq!(state(&s, Some(&early), 60), Open, "early release");
        assert_eq!(
            state(&s, Some(&early), 200),
            Closed,
            "keeps the section's close"
        );
        let extension = exception(None, Some(300));
        assert_eq!(state(&s, Some(&extension), 60), Scheduled);
        assert_eq!(state(&s, Some(&extension), 250), Open, "extension");
        let unpublished = section(false, Some(100), None);
        assert_eq!(
            state(&unpublished, Some(&early), 60),
            Draft,
            "an exception never publishes"
        );
    }

    #[test]
    fn the_next_boundary_is_the_first_future_time() {
        let a = section(true, Some(100), Some(400));
        let b = section(false, Some(150), None);
        let e = exception(Some(120), None);
        let none: [&MaterialRelease; 0] = [];
        assert_eq!(next_boundary([&a, &b], [&e], none, 0), Some(100));
        assert_eq!(
            next_boundary([&a, &b], [&e], none, 100),
            Some(120),
            "drafts are ignored"
        );
        assert_eq!(next_boundary([&a, &b], [&e], none, 120), Some(400));
        assert_eq!(next_boundary([&a, &b], [&e], none, 400), None);
        let r = rule("t.py", true, Some(300), None);
        let draft = rule("d.py", false, Some(200), None);
        assert_eq!(next_boundary([&a], [], [&r, &draft], 120), Some(300));
    }

    fn rule(
        path: &str,
        published: bool,
        release: Option<i64>,
        close: Option<i64>,
    ) -> MaterialRelease {
        MaterialRelease {
            section_id: 1,
            path: path.into(),
            published,
            release_at_ms: release,
            close_at_ms: close,
        }
    }

    #[test]
    fn a_file_rule_only_narrows_its_section() {
        use SectionState::*;
        let s = section(true, Some(100), Some(500));
        let later = rule("test.py", true, Some(300), Some(900));
        assert_eq!(release_state(&s, &later, None, 200), Scheduled);
        assert_eq!(release_state(&s, &later, None, 300), Open);
        assert_eq!(
            release_state(&s, &later, None, 500),
            Closed,
            "its later close does not outlive the section"
        );
        let early = rule("a.py", true, Some(10), None);
        assert_eq!(
            release_state(&s, &early, None, 50),
            Scheduled,
            "its earlier release does not open it before the section"
        );
        let draft = rule("key.py", false, None, None);
        assert_eq!(release_state(&s, &draft, None, 200), Draft);
        let unpublished = section(false, None, None);
        assert_eq!(release_state(&unpublished, &later, None, 400), Draft);
        // A student's exception is their own time for the whole section, files included.
        let extension = exception(Some(50), Some(1000));
        assert_eq!(release_state(&s, &later, Some(&extension), 60), Open);
        assert_eq!(release_state(&s, &later, Some(&extension), 950), Open);
        assert_eq!(
            release_state(&s, &draft, Some(&extension), 60),
            Draft,
            "an exception never publishes a file"
        );
    }

    #[test]
    fn hidden_paths_hide_what_is_under_them() {
        let s = section(true, None, None);
        let rules = vec![
            rule("answers", false, None, None),
            rule("test.py", true, Some(300), None),
            rule("notes.md", true, Some(10), None),
        ];
        assert!(student_view(&section(false, None, None), &rules, None, 0).is_none());
        let h = student_view(&s, &rules, None, 100).expect("open section");
        assert!(h.shows(""));
        assert!(h.shows("notes.md"), "released");
        assert!(!h.shows("test.py"));
        assert!(!h.shows("answers"));
        assert!(!h.shows("answers/q1.py"));
        assert!(
            h.shows("answers2/q1.py"),
            "a name that only starts the same"
        );
        assert!(h.shows("test.pyc"));
        assert!(h.inside(""));
        assert!(!h.inside("data"));
        assert!(!h.inside("answers"), "hidden itself, not a holder");
        let deep = Hidden(vec!["data/secret/x.csv"]);
        assert!(deep.inside("data") && deep.inside("data/secret"));
        assert!(!deep.inside("data/secret/x.csv") && !deep.inside("dat"));
        let h = student_view(&s, &rules, None, 300).expect("open section");
        assert!(h.shows("test.py"), "released at 300");
    }
}
