//! Authorization: the one place that decides "may this user do X on Y".
//! Handlers describe the action and the resource; they never compare roles.

use campus_protocol::{CourseRole, Role, UserInfo};

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read files, list, see versions and trash.
    Read,
    /// Create, change, rename, delete files.
    Write,
    /// Start, control and watch runs.
    Run,
}

/// What it is done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// The workspace of the user with this id.
    Workspace {
        /// Owner's user id.
        owner: i64,
    },
    /// User management (create, disable, roles).
    Users,
    /// The audit log and system statistics.
    AuditLog,
}

/// A refusal, always mapped to `forbidden`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub &'static str);

/// Decide whether `actor` may perform `action` on `resource`.
///
/// Rules: a user may do anything to their own workspace; an admin may read
/// any workspace; only admins manage users and read the audit log. Course
/// staff read their enrolled students' workspaces through
/// [`authorize_course`] with [`CourseAction::ReadStudentWork`] (the caller
/// has checked that the owner is a student of that course).
pub fn authorize(actor: &UserInfo, action: Action, resource: Resource) -> Result<(), Denied> {
    match resource {
        Resource::Workspace { owner } if owner == actor.id => Ok(()),
        Resource::Workspace { .. } => match (actor.role, action) {
            (Role::Admin, Action::Read) => Ok(()),
            _ => Err(Denied("you may only access your own workspace")),
        },
        Resource::Users | Resource::AuditLog => match actor.role {
            Role::Admin => Ok(()),
            _ => Err(Denied("only administrators may do this")),
        },
    }
}

/// What a user wants to do in or to a course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CourseAction {
    /// Create a new course.
    Create,
    /// See the course, list and read its released material.
    View,
    /// Run released material (staff: any material).
    Run,
    /// Copy released material into one's own workspace.
    Copy,
    /// See drafts, unreleased and closed sections and their material.
    ReadDrafts,
    /// Change material and sections (their folders, titles, kinds, order).
    Edit,
    /// Publish, unpublish, set release and close times and exceptions.
    Publish,
    /// Enroll, unenroll, import a roster.
    ManageRoster,
    /// See the roster.
    ListStudents,
    /// Read an enrolled student's workspace, file history and runs (never write).
    ReadStudentWork,
    /// Delete the course.
    Delete,
}

impl CourseAction {
    /// Every action, for the policy table.
    pub const ALL: [CourseAction; 11] = [
        CourseAction::Create,
        CourseAction::View,
        CourseAction::Run,
        CourseAction::Copy,
        CourseAction::ReadDrafts,
        CourseAction::Edit,
        CourseAction::Publish,
        CourseAction::ManageRoster,
        CourseAction::ListStudents,
        CourseAction::ReadStudentWork,
        CourseAction::Delete,
    ];
}

/// Decide whether `actor`, whose role in the course is `member` (`None`: not
/// a member), may do `action` there. Professors own their course; a TA sees
/// drafts, the roster and students' work but changes nothing (no material,
/// publishing or roster: docs/courses.md); a student sees and runs released
/// material and copies it; an admin may do what a professor may in every
/// course. Creating a course is for professors and admins. Anyone else is
/// refused, and a refusal never says whether the course exists (the caller
/// answers `not_found` for a course the user cannot see at all).
pub fn authorize_course(
    actor: &UserInfo,
    member: Option<CourseRole>,
    action: CourseAction,
) -> Result<(), Denied> {
    use CourseAction as A;
    if action == A::Create {
        return match actor.role {
            Role::Professor | Role::Admin => Ok(()),
            Role::Student => Err(Denied("only professors and administrators create courses")),
        };
    }
    let role = match (actor.role, member) {
        (Role::Admin, _) => CourseRole::Professor,
        (_, Some(role)) => role,
        (_, None) => return Err(Denied("you are not a member of this course")),
    };
    let allowed = match action {
        A::View | A::Run | A::Copy => true,
        A::ReadDrafts | A::ListStudents | A::ReadStudentWork => role.is_staff(),
        A::Edit | A::Publish | A::ManageRoster | A::Delete | A::Create => {
            role == CourseRole::Professor
        }
    };
    if allowed {
        Ok(())
    } else if role == CourseRole::Ta {
        Err(Denied(
            "teaching assistants may read but not change this course",
        ))
    } else {
        Err(Denied("only the course's staff may do this"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, role: Role) -> UserInfo {
        UserInfo {
            id,
            username: format!("u{id}"),
            role,
        }
    }

    #[test]
    fn policy_table() {
        let s = user(1, Role::Student);
        let p = user(2, Role::Professor);
        let a = user(3, Role::Admin);
        let own = Resource::Workspace { owner: 1 };
        for act in [Action::Read, Action::Write, Action::Run] {
            assert!(authorize(&s, act, own).is_ok());
            assert!(authorize(&p, act, own).is_err());
        }
        assert!(authorize(&a, Action::Read, own).is_ok());
        assert!(authorize(&a, Action::Write, own).is_err());
        assert!(authorize(&a, Action::Run, own).is_err());
        assert!(authorize(&s, Action::Read, Resource::Workspace { owner: 9 }).is_err());
        assert!(authorize(&s, Action::Read, Resource::Users).is_err());
        assert!(authorize(&a, Action::Write, Resource::Users).is_ok());
        assert!(authorize(&p, Action::Read, Resource::AuditLog).is_err());
    }

    /// Every global role × course role × action, written out as the table
    /// docs/courses.md shows: `P` professor-level, `S` staff (professor or
    /// TA), `M` any member, `C` creators (professors and admins by global role).
    #[test]
    fn course_policy_table() {
        use CourseAction as A;
        let need = |a: CourseAction| match a {
            A::Create => 'C',
            A::View | A::Run | A::Copy => 'M',
            A::ReadDrafts | A::ListStudents | A::ReadStudentWork => 'S',
            A::Edit | A::Publish | A::ManageRoster | A::Delete => 'P',
        };
        let members = [
            None,
            Some(CourseRole::Student),
            Some(CourseRole::Ta),
            Some(CourseRole::Professor),
        ];
        for global in [Role::Student, Role::Professor, Role::Admin] {
            for member in members {
                for action in CourseAction::ALL {
                    let got = authorize_course(&user(7, global), member, action).is_ok();
                    let effective = if global == Role::Admin {
                        Some(CourseRole::Professor)
                    } else {
                        member
                    };
                    let want = match need(action) {
                        'C' => global != Role::Student,
                        'M' => effective.is_some(),
                        'S' => effective.is_some_and(CourseRole::is_staff),
                        _ => effective == Some(CourseRole::Professor),
                    };
                    assert_eq!(got, want, "{global:?} as {member:?} doing {action:?}");
                }
            }
        }
        // Spot checks of the table's meaning, in words.
        let ta = Some(CourseRole::Ta);
        let prof = user(2, Role::Professor);
        assert!(authorize_course(&prof, ta, A::ReadStudentWork).is_ok());
        assert!(
            authorize_course(&prof, ta, A::Publish).is_err(),
            "a TA never publishes"
        );
        assert!(
            authorize_course(&prof, None, A::View).is_err(),
            "staff of another course"
        );
        let stu = user(1, Role::Student);
        assert!(authorize_course(&stu, Some(CourseRole::Student), A::ReadDrafts).is_err());
        assert!(
            authorize_course(&stu, None, A::View).is_err(),
            "student of another course"
        );
    }
}
