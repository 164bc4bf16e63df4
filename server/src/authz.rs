//! Authorization: the one place that decides "may this user do X on Y".
//! Handlers describe the action and the resource; they never compare roles.

use campus_protocol::{Role, UserInfo};

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
/// Rules today: a user may do anything to their own workspace; an admin may read
/// any workspace; only admins manage users and read the audit log. Professors get
/// read access to their enrolled students' workspaces with the Courses work
/// (it will add a `Course` resource and an enrollment lookup here).
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
}
