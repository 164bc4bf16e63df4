//! The courses domain: listing and opening courses, browsing, reading and
//! running their material, copying it into one's workspace, the staff's
//! operations (material, sections and their visibility, exceptions, the
//! roster, reading enrolled students' work), their replies, and the
//! `course_changed` event. Course `course` fields are the course's slug.

use serde::{Deserialize, Serialize};

use crate::files::{Encoding, FileEntry, VersionInfo};

/// A member's role in one course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CourseRole {
    /// Owns the course: material, publishing, the roster, students' work.
    Professor,
    /// Teaching assistant: reads drafts and students' work; changes nothing.
    Ta,
    /// Enrolled student: reads and runs released material.
    Student,
}

impl CourseRole {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CourseRole::Professor => "professor",
            CourseRole::Ta => "ta",
            CourseRole::Student => "student",
        }
    }

    /// Professor or TA.
    pub fn is_staff(self) -> bool {
        !matches!(self, CourseRole::Student)
    }
}

impl std::str::FromStr for CourseRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "professor" => Ok(CourseRole::Professor),
            "ta" => Ok(CourseRole::Ta),
            "student" => Ok(CourseRole::Student),
            other => Err(format!(
                "unknown course role {other:?} (expected student, ta or professor)"
            )),
        }
    }
}

/// A course operation a client asks for (counted against the per-user file-operation limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CourseRequest {
    /// The courses the user is a member of (every course, for an admin).
    CourseList {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Create a course (professors and admins); a professor becomes its professor.
    CourseCreate {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Short unique name: 1–32 of `a-z 0-9 -`, starting with a letter or digit.
        slug: String,
        /// Display title.
        title: String,
        /// Term, free text.
        #[serde(default)]
        term: String,
    },
    /// One course with the sections this user may see.
    CourseOpen {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
    },
    /// List a folder of the course's material (`path` empty = the sections).
    CourseListFiles {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Folder path in the material.
        #[serde(default)]
        path: String,
    },
    /// Read one material file.
    CourseRead {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// File path in the material.
        path: String,
    },
    /// Write a material file atomically (professors). Without `base_version` the file must not exist.
    CourseWrite {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// File path; its first component must be a section's folder.
        path: String,
        /// The new content (see `encoding`).
        content: String,
        /// How `content` is encoded.
        #[serde(default)]
        encoding: Encoding,
        /// The version this edit is based on; a mismatch is a `conflict`.
        #[serde(default)]
        base_version: Option<String>,
    },
    /// Create a folder in the material (professors).
    CourseMkdir {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Folder path.
        path: String,
    },
    /// Move a material file or folder to the course's trash (professors).
    CourseDelete {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Entry path.
        path: String,
    },
    /// Copy a material file or folder into the user's own workspace. Nothing
    /// there is overwritten: if `to` exists, the copy gets the first free name
    /// `stem (2).ext`, `stem (3).ext`, … and the reply says so.
    CourseCopy {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Source path in the material.
        path: String,
        /// Destination path in the workspace (default: the source's name at the root).
        #[serde(default)]
        to: Option<String>,
    },
    /// Create (`section` absent) or change a section (professors).
    SectionSave {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The section to change; absent to create one.
        #[serde(default)]
        section: Option<i64>,
        /// Its folder (one path component); created if missing.
        folder: String,
        /// Display title.
        title: String,
        /// `notes`, `assignment`, `test`, or a free name.
        kind: String,
        /// Order (ascending); absent on create: after the last.
        #[serde(default)]
        position: Option<i64>,
        /// Published (visible to students once released).
        #[serde(default)]
        published: bool,
        /// Release time, ms since the epoch (UTC); absent: at once.
        #[serde(default)]
        release_at_ms: Option<i64>,
        /// Close time, ms since the epoch (UTC); absent: never.
        #[serde(default)]
        close_at_ms: Option<i64>,
    },
    /// Delete a section; its folder goes to the course's trash (professors).
    SectionDelete {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section id.
        section: i64,
    },
    /// Give one student their own release and/or close time for a section (professors).
    ExceptionSet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section id.
        section: i64,
        /// The enrolled student.
        username: String,
        /// Their release time (absent: the section's).
        #[serde(default)]
        release_at_ms: Option<i64>,
        /// Their close time (absent: the section's).
        #[serde(default)]
        close_at_ms: Option<i64>,
    },
    /// Remove a student's exception (professors).
    ExceptionRemove {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Section id.
        section: i64,
        /// The student.
        username: String,
    },
    /// Give one file or folder of a section its own visibility (professors):
    /// a draft inside a published section, or a later release / earlier
    /// close than the section's. Replaces the path's rule if it has one.
    ReleaseSet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Material path inside a section's folder (`week3/test.py`); must exist.
        path: String,
        /// Published (visible to students once released); a draft otherwise.
        #[serde(default)]
        published: bool,
        /// Release time, ms since the epoch (UTC); absent: the section's.
        #[serde(default)]
        release_at_ms: Option<i64>,
        /// Close time, ms since the epoch (UTC); absent: the section's.
        #[serde(default)]
        close_at_ms: Option<i64>,
    },
    /// Remove a path's own visibility: it follows its section again (professors).
    ReleaseRemove {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Material path (`week3/test.py`).
        path: String,
    },
    /// The course's members (staff).
    RosterGet {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
    },
    /// Add one member or change their role (professors).
    Enroll {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// An existing account.
        username: String,
        /// Their role in the course (default `student`).
        #[serde(default)]
        role: Option<CourseRole>,
    },
    /// Remove a member (professors). Their workspace is kept.
    Unenroll {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The member.
        username: String,
    },
    /// Import a roster: CSV lines `username[,role]` (professors). Every line
    /// is validated first; if any is invalid nothing is applied and the reply
    /// lists each line's result.
    RosterImport {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The CSV text (at most 5,000 lines; a header line `username[,role]` is skipped).
        csv: String,
        /// Create student accounts for unknown usernames (administrators only),
        /// each with an initial password returned once in the reply.
        #[serde(default)]
        create_accounts: bool,
    },
    /// List a folder of an enrolled student's workspace (staff; read-only).
    StudentListFiles {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student's username.
        student: String,
        /// Folder path.
        #[serde(default)]
        path: String,
    },
    /// Read a file of an enrolled student's workspace (staff; read-only).
    StudentRead {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student's username.
        student: String,
        /// File path.
        path: String,
    },
    /// The kept earlier versions of a student's file (staff; read-only).
    StudentVersions {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student's username.
        student: String,
        /// File path.
        path: String,
    },
    /// Read one kept earlier version of a student's file (staff; read-only).
    StudentReadVersion {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student's username.
        student: String,
        /// File path.
        path: String,
        /// Version id from `student_versions`.
        version: String,
    },
    /// A student's recent runs (staff).
    StudentRuns {
        /// Request id, echoed.
        #[serde(default)]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student's username.
        student: String,
    },
}

impl CourseRequest {
    /// The `type` of each course request message, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "course_list",
        "course_create",
        "course_open",
        "course_list_files",
        "course_read",
        "course_write",
        "course_mkdir",
        "course_delete",
        "course_copy",
        "section_save",
        "section_delete",
        "exception_set",
        "exception_remove",
        "release_set",
        "release_remove",
        "roster_get",
        "enroll",
        "unenroll",
        "roster_import",
        "student_list_files",
        "student_read",
        "student_versions",
        "student_read_version",
        "student_runs",
    ];

    /// The request id, if the client gave one.
    pub fn id(&self) -> Option<u64> {
        match self {
            CourseRequest::CourseList { id }
            | CourseRequest::CourseCreate { id, .. }
            | CourseRequest::CourseOpen { id, .. }
            | CourseRequest::CourseListFiles { id, .. }
            | CourseRequest::CourseRead { id, .. }
            | CourseRequest::CourseWrite { id, .. }
            | CourseRequest::CourseMkdir { id, .. }
            | CourseRequest::CourseDelete { id, .. }
            | CourseRequest::CourseCopy { id, .. }
            | CourseRequest::SectionSave { id, .. }
            | CourseRequest::SectionDelete { id, .. }
            | CourseRequest::ExceptionSet { id, .. }
            | CourseRequest::ExceptionRemove { id, .. }
            | CourseRequest::ReleaseSet { id, .. }
            | CourseRequest::ReleaseRemove { id, .. }
            | CourseRequest::RosterGet { id, .. }
            | CourseRequest::Enroll { id, .. }
            | CourseRequest::Unenroll { id, .. }
            | CourseRequest::RosterImport { id, .. }
            | CourseRequest::StudentListFiles { id, .. }
            | CourseRequest::StudentRead { id, .. }
            | CourseRequest::StudentVersions { id, .. }
            | CourseRequest::StudentReadVersion { id, .. }
            | CourseRequest::StudentRuns { id, .. } => *id,
        }
    }
}

/// A reply to a course request, or a change of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CourseMsg {
    /// Reply to `course_list`.
    Courses {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The user's courses, by slug.
        courses: Vec<CourseSummary>,
    },
    /// Reply to `course_create`, `course_open` and the section and exception operations.
    Course {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The course as this user may see it.
        course: CourseInfo,
    },
    /// Reply to `course_list_files` and `student_list_files`.
    CourseListing {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Whose workspace (`student_list_files`); absent for the course material.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student: Option<String>,
        /// The listed folder.
        path: String,
        /// Its entries, in pre-order.
        entries: Vec<FileEntry>,
    },
    /// Reply to `course_read`, `student_read` and `student_read_version`.
    CourseFile {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Whose workspace (`student_read`); absent for the course material.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student: Option<String>,
        /// File path.
        path: String,
        /// Version of this content.
        version: String,
        /// Size in bytes.
        size: u64,
        /// MIME type guess.
        mime: String,
        /// `utf8` when the bytes are valid UTF-8, else `base64`.
        encoding: Encoding,
        /// The content.
        content: String,
    },
    /// Reply to `course_write`, `course_mkdir` and `course_delete`.
    CourseWritten {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The path written, created or deleted.
        path: String,
        /// The new version of a written file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// Reply to `course_copy`.
    CourseCopied {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Source path in the material.
        from: String,
        /// Where the copy is in the workspace.
        to: String,
        /// True when the asked-for name existed and the copy got a new one.
        renamed: bool,
    },
    /// Reply to `roster_get`, `enroll` and `unenroll`.
    Roster {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// Members, by username.
        members: Vec<MemberInfo>,
    },
    /// Reply to `roster_import`.
    RosterResult {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// True when every line was valid and the roster was changed; false: nothing changed.
        applied: bool,
        /// Each non-empty line's result.
        lines: Vec<RosterLine>,
        /// The accounts created, with their initial passwords (shown once).
        accounts: Vec<NewAccount>,
    },
    /// Reply to `student_versions`.
    StudentVersions {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student.
        student: String,
        /// File path.
        path: String,
        /// Kept earlier versions, newest first.
        versions: Vec<VersionInfo>,
    },
    /// Reply to `student_runs`.
    StudentRuns {
        /// Echoed request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Course slug.
        course: String,
        /// The student.
        student: String,
        /// Most recent first.
        runs: Vec<RunSummary>,
    },
    /// Something this user can see in a course changed (a section was
    /// published, released, closed or edited; material changed; the roster
    /// changed): open it again to see what.
    CourseChanged {
        /// Course slug.
        course: String,
    },
}

impl CourseMsg {
    /// The request id a reply echoes (`None` for `course_changed`).
    pub fn id(&self) -> Option<u64> {
        match self {
            CourseMsg::Courses { id, .. }
            | CourseMsg::Course { id, .. }
            | CourseMsg::CourseListing { id, .. }
            | CourseMsg::CourseFile { id, .. }
            | CourseMsg::CourseWritten { id, .. }
            | CourseMsg::CourseCopied { id, .. }
            | CourseMsg::Roster { id, .. }
            | CourseMsg::RosterResult { id, .. }
            | CourseMsg::StudentVersions { id, .. }
            | CourseMsg::StudentRuns { id, .. } => *id,
            CourseMsg::CourseChanged { .. } => None,
        }
    }

    /// The `type` of each course server message, in declaration order.
    pub const TYPES: &'static [&'static str] = &[
        "courses",
        "course",
        "course_listing",
        "course_file",
        "course_written",
        "course_copied",
        "roster",
        "roster_result",
        "student_versions",
        "student_runs",
        "course_changed",
    ];
}

/// A course in the user's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct CourseSummary {
    /// Short unique name.
    pub slug: String,
    /// Display title.
    pub title: String,
    /// Term.
    pub term: String,
    /// The user's role in it (absent for an admin who is not a member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CourseRole>,
}

/// Where a section stands for the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SectionState {
    /// Not published (staff only see it).
    Draft,
    /// Published, release time ahead (staff only see it).
    Scheduled,
    /// Visible to students.
    Open,
    /// Published, close time passed (staff only see it).
    Closed,
}

/// A section as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct SectionInfo {
    /// Section id.
    pub id: i64,
    /// Its folder in the material.
    pub folder: String,
    /// Display title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Order.
    pub position: i64,
    /// Published.
    pub published: bool,
    /// Release time (for a student: their own, with an exception), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at_ms: Option<i64>,
    /// Close time (for a student: their own), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_at_ms: Option<i64>,
    /// Where it stands now for the viewer (for staff: for students without an exception).
    pub state: SectionState,
    /// Per-student exceptions (staff only; empty for students).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionInfo>,
    /// Files and folders with their own visibility (staff: all of them;
    /// students: only those open to them, with their times).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseInfo>,
}

/// A file or folder of a section with its own visibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct ReleaseInfo {
    /// Its material path (`week3/test.py`).
    pub path: String,
    /// Published.
    pub published: bool,
    /// Its release time (the later of its own and the section's; for a
    /// student with an exception, theirs), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at_ms: Option<i64>,
    /// Its close time (the earlier of its own and the section's; for a
    /// student with an exception, theirs), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_at_ms: Option<i64>,
    /// Where it stands now for the viewer (for staff: for students without an exception).
    pub state: SectionState,
}

/// One student's own times for a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct ExceptionInfo {
    /// The student.
    pub username: String,
    /// Their release time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at_ms: Option<i64>,
    /// Their close time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_at_ms: Option<i64>,
}

/// A course as the viewer may see it: students see only open sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct CourseInfo {
    /// Short unique name (its material is at `/course/<slug>` in runs).
    pub slug: String,
    /// Display title.
    pub title: String,
    /// Term.
    pub term: String,
    /// The viewer's role (absent for an admin who is not a member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CourseRole>,
    /// What the viewer may do: `edit` (material, sections, exceptions,
    /// roster), `drafts` (see unpublished material), `students` (see
    /// the roster and students' work).
    pub can: Vec<String>,
    /// Sections in order.
    pub sections: Vec<SectionInfo>,
    /// The server's clock when this was made, ms since the epoch.
    pub now_ms: i64,
}

/// One member of a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemberInfo {
    /// Login name.
    pub username: String,
    /// Role in the course.
    pub role: CourseRole,
    /// When added, ms since the epoch.
    pub added_at_ms: i64,
}

/// One line of a roster import and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct RosterLine {
    /// 1-based line number in the CSV.
    pub line: u32,
    /// The username read (absent if none could be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The role read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CourseRole>,
    /// `enroll`, `change_role`, `unchanged`, `create_account` or `invalid`.
    pub outcome: String,
    /// Why the line is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An account a roster import created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NewAccount {
    /// Login name.
    pub username: String,
    /// Initial password (shown only in this reply).
    pub password: String,
}

/// One run in a student's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// The file run.
    pub path: String,
    /// `script`, `repl` or `hybrid`.
    pub mode: String,
    /// Start, ms since the epoch.
    pub started_at_ms: i64,
    /// End, ms since the epoch (absent while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}
