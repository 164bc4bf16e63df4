//! The courses aggregate: courses, their members (staff and students), the
//! sections of their material with visibility, and per-student exceptions.
//! Every change adds one to the catalog's generation in the same transaction,
//! and the whole catalog is read at once ([`Courses::load_catalog`]): the
//! server serves every course read from memory and reloads only when the
//! generation moved (see [`crate::courses`]).

use async_trait::async_trait;

use super::{NewUser, StoreResult};

pub use campus_protocol::CourseRole;

/// A course row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    /// Primary key.
    pub id: i64,
    /// Unique short name (`cs101`); names the course's mount `/course/<slug>`.
    pub slug: String,
    /// Display title.
    pub title: String,
    /// Term (`2026 Fall`), free text.
    pub term: String,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
}

/// Fields of a new course.
#[derive(Debug, Clone)]
pub struct NewCourse {
    /// Unique short name.
    pub slug: String,
    /// Display title.
    pub title: String,
    /// Term.
    pub term: String,
}

/// One member of one course.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The course.
    pub course_id: i64,
    /// The user.
    pub user_id: i64,
    /// Their username (read with the catalog).
    pub username: String,
    /// Their role in it.
    pub role: CourseRole,
    /// When they were added, ms since the epoch.
    pub added_at_ms: i64,
}

/// A section: one top-level folder of the course's material, with its visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Primary key.
    pub id: i64,
    /// The course.
    pub course_id: i64,
    /// Its folder in the material tree (one path component).
    pub folder: String,
    /// Display title.
    pub title: String,
    /// `notes`, `assignment`, `test`, or a free name.
    pub kind: String,
    /// Order among the course's sections (ascending).
    pub position: i64,
    /// Published (students may see it once released); a draft otherwise.
    pub published: bool,
    /// Not visible to students before this time (ms since the epoch).
    pub release_at_ms: Option<i64>,
    /// Not visible to students from this time on.
    pub close_at_ms: Option<i64>,
}

/// What a section is created or changed to (everything but its ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionFields {
    /// Folder (one path component).
    pub folder: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Order.
    pub position: i64,
    /// Published.
    pub published: bool,
    /// Release time.
    pub release_at_ms: Option<i64>,
    /// Close time.
    pub close_at_ms: Option<i64>,
}

/// One student's own release and close times for one section (an early
/// release or an extension); `None` keeps the section's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionException {
    /// The section.
    pub section_id: i64,
    /// The student.
    pub user_id: i64,
    /// Their release time.
    pub release_at_ms: Option<i64>,
    /// Their close time.
    pub close_at_ms: Option<i64>,
}

/// Visibility of one file or folder inside a section: it only narrows the
/// section's (unpublished, a later release, an earlier close); a student's
/// section exception overrides these times as it does the section's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialRelease {
    /// The section.
    pub section_id: i64,
    /// Path relative to the section's folder (normalized, never empty).
    pub path: String,
    /// Published; a draft (hidden from students) otherwise.
    pub published: bool,
    /// Not visible to students before this time.
    pub release_at_ms: Option<i64>,
    /// Not visible to students from this time on.
    pub close_at_ms: Option<i64>,
}

/// Everything about courses, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The catalog's generation when read.
    pub generation: i64,
    /// Every course, by slug.
    pub courses: Vec<Course>,
    /// Every membership.
    pub members: Vec<Member>,
    /// Every section, by course then position.
    pub sections: Vec<Section>,
    /// Every exception.
    pub exceptions: Vec<SectionException>,
    /// Every per-file rule, by section then path.
    pub releases: Vec<MaterialRelease>,
}

/// A roster change applied as one transaction: accounts to create, then
/// members to add or change (by username, so new accounts can be named).
#[derive(Debug, Clone, Default)]
pub struct RosterChange {
    /// Accounts created first.
    pub new_accounts: Vec<NewUser>,
    /// (username, role) set in the course.
    pub members: Vec<(String, CourseRole)>,
}

/// Operations on courses. Every write adds one to the catalog generation.
#[async_trait]
pub trait Courses: Send + Sync {
    /// The catalog's current generation (one indexed read).
    async fn catalog_generation(&self) -> StoreResult<i64>;
    /// The whole catalog.
    async fn load_catalog(&self) -> StoreResult<Catalog>;
    /// Create a course; `Conflict` if the slug exists.
    async fn create_course(&self, course: NewCourse) -> StoreResult<Course>;
    /// Delete a course with its members, sections and exceptions; `NotFound` if absent.
    async fn delete_course(&self, course_id: i64) -> StoreResult<()>;
    /// Add a member or change their role; `NotFound` if the course or user is absent.
    async fn set_member(&self, course_id: i64, user_id: i64, role: CourseRole) -> StoreResult<()>;
    /// Remove a member (their exceptions in this course too); `NotFound` if not a member.
    async fn remove_member(&self, course_id: i64, user_id: i64) -> StoreResult<()>;
    /// Apply a roster import in one transaction: all of it or nothing
    /// (`Conflict` if a new account's name is taken, `NotFound` if a member's
    /// username does not exist). Returns the ids of the created accounts.
    async fn apply_roster(&self, course_id: i64, change: RosterChange) -> StoreResult<Vec<i64>>;
    /// Create a section; `Conflict` if the folder is another section's.
    async fn create_section(&self, course_id: i64, fields: SectionFields) -> StoreResult<Section>;
    /// Replace a section's fields; `NotFound` if absent, `Conflict` on a folder clash.
    async fn update_section(&self, section_id: i64, fields: SectionFields) -> StoreResult<Section>;
    /// Delete a section (its exceptions too); `NotFound` if absent.
    async fn delete_section(&self, section_id: i64) -> StoreResult<()>;
    /// Set (insert or replace) one student's exception; `NotFound` if the section or user is absent.
    async fn set_exception(&self, exception: SectionException) -> StoreResult<()>;
    /// Remove one student's exception; `NotFound` if there is none.
    async fn remove_exception(&self, section_id: i64, user_id: i64) -> StoreResult<()>;
    /// Set (insert or replace) a per-file rule; `NotFound` if the section is absent.
    async fn set_release(&self, release: MaterialRelease) -> StoreResult<()>;
    /// Remove a per-file rule; `NotFound` if there is none.
    async fn remove_release(&self, section_id: i64, path: &str) -> StoreResult<()>;
}
