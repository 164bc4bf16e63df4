//! When students may see a section: published, released (their own release
//! time if they have an exception, else the section's) and not yet closed.
//! Pure functions of the catalog and a clock, so the rules are tested alone.

use campus_protocol::SectionState;

use crate::store::{Section, SectionException};

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
    let (release, close) = times(section, exception);
    if release.is_some_and(|r| now_ms < r) {
        SectionState::Scheduled
    } else if close.is_some_and(|c| now_ms >= c) {
        SectionState::Closed
    } else {
        SectionState::Open
    }
}

/// The first release or close time after `now_ms` among published sections
/// and their exceptions: when some student's view changes next.
pub fn next_boundary<'a>(
    sections: impl IntoIterator<Item = &'a Section>,
    exceptions: impl IntoIterator<Item = &'a SectionException>,
    now_ms: i64,
) -> Option<i64> {
    let from_sections = sections
        .into_iter()
        .filter(|s| s.published)
        .flat_map(|s| [s.release_at_ms, s.close_at_ms]);
    let from_exceptions = exceptions
        .into_iter()
        .flat_map(|e| [e.release_at_ms, e.close_at_ms]);
    from_sections
        .chain(from_exceptions)
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
        assert_eq!(next_boundary([&a, &b], [&e], 0), Some(100));
        assert_eq!(
            next_boundary([&a, &b], [&e], 100),
            Some(120),
            "drafts are ignored"
        );
        assert_eq!(next_boundary([&a, &b], [&e], 120), Some(400));
        assert_eq!(next_boundary([&a, &b], [&e], 400), None);
    }
}
