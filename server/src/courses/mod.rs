//! Courses: professors publish read-only material on a schedule; students
//! read it, run it and copy it into their workspace (docs/courses.md).
//!
//! - The model is the store's courses aggregate; every read is served from
//!   the in-memory [`catalog`], never a query per student.
//! - Who may do what is decided in one place, [`crate::authz::authorize_course`];
//!   whether a student sees a section, in [`visibility`].
//! - The material is a file tree per course kept by `workspace-fs` (the same
//!   path rules, atomic writes, history and trash as workspaces) under
//!   `<data dir>/courses/<course id>`, each section a top-level folder.
//!   Students see only the folders of the sections open to them; files
//!   outside any section are staff-only.
//! - A run of a course file ([`CourseService::run_plan`]) sees the material
//!   read-only at `/course/<slug>` (students: only their open sections'
//!   folders), its working directory the student's own workspace.
//! - Members' connections are told `course_changed` when something they can
//!   see changed, including at release and close times ([`CourseService::watch`]).

pub mod catalog;
mod handlers;
mod mounts;
pub mod roster;
pub mod visibility;

use std::sync::Arc;
use std::time::Duration;

use campus_protocol::{CourseMsg, CourseRole, EndReason, ErrorCode, Role, ServerMsg, UserInfo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workspace_fs::{Workspace, Workspaces};

use crate::authz::{self, CourseAction};
use crate::error::AppError;
use crate::execution::ReadOnlyTree;
use crate::files::{map_fs_error, FileService};
use crate::hub::Hub;
use crate::records::Records;
use crate::runner::{MountedScript, Runner};
use crate::store::{Course, DynStore, NewAudit, Section};
pub use handlers::{valid_folder, valid_slug};

use catalog::{CatalogCache, CatalogView};

/// How often the catalog generation is compared with the database's (changes
/// made by the CLI or another replica appear within this).
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// How long ending one student's run may take before the next is tried.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// What the course service is built from.
#[derive(Debug)]
pub struct CourseDeps {
    /// The database, behind its breaker.
    pub store: DynStore,
    /// The material trees.
    pub materials: Arc<Workspaces>,
    /// Students' workspaces (copy targets; staff read them).
    pub files: Arc<FileService>,
    /// Live connections (told about changes).
    pub hub: Arc<Hub>,
    /// The audit log.
    pub records: Records,
    /// Sessions (students' runs of material ended when it changes under them).
    pub runner: Arc<Runner>,
    /// Where the background tasks it starts are tracked.
    pub tracker: TaskTracker,
}

/// See the module docs.
#[derive(Debug)]
pub struct CourseService {
    store: DynStore,
    cache: CatalogCache,
    materials: Arc<Workspaces>,
    files: Arc<FileService>,
    hub: Arc<Hub>,
    records: Records,
    runner: Arc<Runner>,
    tracker: TaskTracker,
}

/// A course and the caller's standing in it.
struct Standing {
    course: Course,
    role: Option<CourseRole>,
}

impl CourseService {
    /// The service over its dependencies.
    pub fn new(deps: CourseDeps) -> Self {
        CourseService {
            cache: CatalogCache::new(Arc::clone(&deps.store)),
            store: deps.store,
            materials: deps.materials,
            files: deps.files,
            hub: deps.hub,
            records: deps.records,
            runner: deps.runner,
            tracker: deps.tracker,
        }
    }

    /// The catalog cache (its load count is what the scale test reads).
    pub fn catalog(&self) -> &CatalogCache {
        &self.cache
    }

    /// Look the course up and the caller's role in it. A course the caller is
    /// not a member of is `not_found` for everyone but admins: its existence
    /// is not told.
    fn standing(
        &self,
        view: &CatalogView,
        user: &UserInfo,
        slug: &str,
    ) -> Result<Standing, AppError> {
        let missing = || AppError::new(ErrorCode::NotFound, format!("no course {slug:?}"));
        let course = view.course(slug).ok_or_else(missing)?;
        let role = view.role(course.id, user.id);
        if role.is_none() && user.role != Role::Admin {
            return Err(missing());
        }
        Ok(Standing {
            course: course.clone(),
            role,
        })
    }

    /// The current catalog, the course `slug` and the caller's standing in
    /// it, with `action` authorized: how every course request begins.
    async fn enter(
        &self,
        user: &UserInfo,
        slug: &str,
        action: CourseAction,
    ) -> Result<(Arc<CatalogView>, Standing), AppError> {
        let view = self.cache.get().await?;
        let st = self.standing(&view, user, slug)?;
        self.allow(user, &st, action)?;
        Ok((view, st))
    }

    /// For an assignment (grading): the course, the section at `folder`, the
    /// caller's role (admins: professor) and whether they are staff, with
    /// `action` authorized. A student asking for a section not released to
    /// them gets `not_found`, as for one that does not exist.
    pub(crate) async fn assignment_section(
        &self,
        user: &UserInfo,
        slug: &str,
        folder: &str,
        action: CourseAction,
    ) -> Result<(Course, Section, Option<CourseRole>, bool), AppError> {
        let (view, st) = self.enter(user, slug, action).await?;
        let missing = || AppError::new(ErrorCode::NotFound, format!("no assignment {folder:?}"));
        let section = view
            .section_by_folder(st.course.id, folder)
            .ok_or_else(missing)?
            .clone();
        let staff = self.is_staff(user, &st);
        if !staff {
            let state = visibility::state(
                &section,
                view.exception(section.id, user.id),
                crate::store::now_ms(),
            );
            if matches!(
                state,
                campus_protocol::SectionState::Draft | campus_protocol::SectionState::Scheduled
            ) {
                return Err(missing());
            }
        }
        Ok((st.course, section, st.role, staff))
    }

    /// For a student's progress page: the course and the sections `user`
    /// may see (staff: all), with `action` authorized.
    pub(crate) async fn visible_sections(
        &self,
        user: &UserInfo,
        slug: &str,
        action: CourseAction,
    ) -> Result<(Course, Vec<Section>), AppError> {
        let (view, st) = self.enter(user, slug, action).await?;
        let staff = self.is_staff(user, &st);
        let now = crate::store::now_ms();
        let sections = view
            .sections(st.course.id)
            .iter()
            .filter(|s| {
                staff
                    || !matches!(
                        visibility::state(s, view.exception(s.id, user.id), now),
                        campus_protocol::SectionState::Draft
                            | campus_protocol::SectionState::Scheduled
                    )
            })
            .cloned()
            .collect();
        Ok((st.course, sections))
    }

    /// For grading: the course and section of `section_id`, and whether
    /// `user` is staff of that course (admins are).
    pub(crate) async fn section_by_id(
        &self,
        user: &UserInfo,
        section_id: i64,
    ) -> Result<(Course, Section, bool), AppError> {
        let view = self.cache.get().await?;
        let missing = || AppError::new(ErrorCode::NotFound, "no such submission");
        let (course, section) = view
            .courses()
            .iter()
            .find_map(|c| {
                view.section(c.id, section_id)
                    .map(|s| (c.clone(), s.clone()))
            })
            .ok_or_else(missing)?;
        let staff = authz::authorize_course(
            user,
            view.role(course.id, user.id),
            CourseAction::ReadStudentWork,
        )
        .is_ok();
        Ok((course, section, staff))
    }

    /// The course slug and folder of a section (grading's messages name them).
    pub(crate) async fn section_names(&self, section_id: i64) -> Option<(String, String)> {
        let view = self.cache.get().await.ok()?;
        view.courses().iter().find_map(|c| {
            view.section(c.id, section_id)
                .map(|s| (c.slug.clone(), s.folder.clone()))
        })
    }

    /// Write a grading audit entry in the background.
    pub(crate) fn audit_grading(
        &self,
        user: &UserInfo,
        action: &str,
        target: &str,
        detail: String,
    ) {
        self.audit(user, action, target, detail);
    }

    /// Authorize `action` for the caller in this course; refusals are audited.
    fn allow(&self, user: &UserInfo, st: &Standing, action: CourseAction) -> Result<(), AppError> {
        authz::authorize_course(user, st.role, action).map_err(|denied| {
            self.audit(
                user,
                "course.forbidden",
                &st.course.slug,
                format!("{action:?}"),
            );
            denied.into()
        })
    }

    /// Write an audit entry in the background.
    fn audit(&self, user: &UserInfo, action: &str, target: &str, detail: String) {
        self.records.audit(NewAudit {
            actor_id: Some(user.id),
            actor: Some(user.username.clone()),
            action: action.into(),
            target: Some(format!("course:{target}")),
            detail: Some(detail.chars().take(500).collect()),
            ip: None,
        });
    }

    /// The material tree of a course (opened on first use; readable by the
    /// sandbox's users, as a course's files are read by every student).
    async fn material(&self, course_id: i64) -> Result<Arc<Workspace>, AppError> {
        let key = course_id.to_string();
        if let Some(ws) = self.materials.get(&key) {
            return Ok(ws);
        }
        let materials = Arc::clone(&self.materials);
        tokio::task::spawn_blocking(move || {
            let ws = materials.open(&key, None).map_err(map_fs_error)?;
            let root = materials.tree_path(&key).map_err(map_fs_error)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
                .map_err(AppError::internal)?;
            Ok(ws)
        })
        .await
        .map_err(AppError::internal)?
    }

    /// Is `path` in a section open to this student, and not hidden by a
    /// per-file rule (or is the caller staff)? A student asking for anything
    /// else gets `not_found`, the same as for a path that does not exist.
    fn check_visible(
        &self,
        view: &CatalogView,
        user: &UserInfo,
        st: &Standing,
        path: &str,
    ) -> Result<(), AppError> {
        if self.is_staff(user, st) {
            return Ok(());
        }
        // Invalid spellings are refused before visibility is looked at: the
        // answer must not differ between a hidden name and any other.
        workspace_fs::validate_path(&workspace_fs::normalize_path(path)).map_err(map_fs_error)?;
        if shows_in(view, st.course.id, user.id, path, crate::store::now_ms()) {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::NotFound,
                format!("{path} does not exist"),
            ))
        }
    }

    /// May the caller read drafts (staff, admins)?
    fn is_staff(&self, user: &UserInfo, st: &Standing) -> bool {
        authz::authorize_course(user, st.role, CourseAction::ReadDrafts).is_ok()
    }

    /// Authorize a run of course file `path` and say what it mounts.
    pub async fn run_plan(
        &self,
        user: &UserInfo,
        slug: &str,
        path: &str,
    ) -> Result<MountedScript, AppError> {
        let (view, st) = self.enter(user, slug, CourseAction::Run).await?;
        let path = path.trim_matches('/');
        self.check_visible(&view, user, &st, path)?;
        // Opened (created on first use, readable by the sandbox's users) before it is mounted.
        self.material(st.course.id).await?;
        let host_root = self
            .materials
            .tree_path(&st.course.id.to_string())
            .map_err(map_fs_error)?;
        let slug = &st.course.slug;
        let mounts = if self.is_staff(user, &st) {
            vec![ReadOnlyTree {
                host: host_root.clone(),
                name: slug.clone(),
            }]
        } else {
            let now = crate::store::now_ms();
            let open: Vec<(String, Vec<String>)> = view
                .sections(st.course.id)
                .iter()
                .filter_map(|s| {
                    let hidden = student_view(&view, s, user.id, now)?;
                    Some((
                        s.folder.clone(),
                        hidden.0.iter().map(|h| h.to_string()).collect(),
                    ))
                })
                .collect();
            let (root, slug) = (host_root.clone(), slug.clone());
            let folder = path.split('/').next().unwrap_or_default().to_string();
            tokio::task::spawn_blocking(move || {
                mounts::student_mounts(&root, &slug, &folder, &open)
            })
            .await
            .map_err(AppError::internal)??
        };
        Ok(MountedScript {
            script: format!("{}/{slug}/{path}", crate::sandbox::READ_ONLY_ROOT),
            host_root,
            path: path.to_string(),
            mounts,
        })
    }

    /// After a write to material `path`: the students it is hidden from who
    /// have a run of this course going have that run ended
    /// (`material_changed`) — a folder their run mounted whole would show it.
    fn end_runs_that_would_see(&self, view: &CatalogView, course: &Course, path: &str) {
        let path = workspace_fs::normalize_path(path.trim_matches('/'));
        let (folder, rel) = path.split_once('/').unwrap_or((&path, ""));
        let Some(section) = view.section_by_folder(course.id, folder) else {
            return; // outside every section: never mounted for students
        };
        let now = crate::store::now_ms();
        let students: Vec<i64> = view
            .members(course.id)
            .filter(|m| m.role == CourseRole::Student)
            .filter(|m| student_view(view, section, m.user_id, now).is_some_and(|h| !h.shows(rel)))
            .map(|m| m.user_id)
            .collect();
        if students.is_empty() {
            return;
        }
        let runner = Arc::clone(&self.runner);
        let prefix = format!("{}/{}/", crate::sandbox::READ_ONLY_ROOT, course.slug);
        self.tracker.spawn(async move {
            for uid in students {
                let Some(info) = runner.session_info(uid).await else {
                    continue;
                };
                if info.running && info.path.as_deref().is_some_and(|p| p.starts_with(&prefix)) {
                    runner
                        .end_user_run(uid, EndReason::MaterialChanged, STOP_WAIT)
                        .await;
                }
            }
        });
    }

    /// Tell the members of `course` (only its staff when `staff_only`) that it changed.
    fn announce(&self, view: &CatalogView, course: &Course, staff_only: bool) {
        let msg = ServerMsg::Courses(CourseMsg::CourseChanged {
            course: course.slug.clone(),
        });
        for m in view.members(course.id) {
            if !staff_only || m.role.is_staff() {
                self.hub.send_to_user(m.user_id, None, &msg);
            }
        }
    }

    /// Keep the catalog current and tell members about releases and closes
    /// as they happen, until `token` is cancelled.
    pub async fn watch(self: Arc<Self>, token: CancellationToken) {
        let mut changed = self.cache.subscribe();
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = crate::store::now_ms();
        loop {
            let view = self.cache.snapshot();
            let (sections, exceptions, rules) = view.all();
            let next = visibility::next_boundary(sections, exceptions, rules, last);
            // Boundaries are searched after the last one announced (none is
            // missed while we waited on something else), slept to from now.
            let sleep = match next {
                Some(t) => {
                    Duration::from_millis(u64::try_from(t - crate::store::now_ms()).unwrap_or(0))
                }
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                // A reload first: the boundaries are then computed from the new view.
                biased;
                _ = token.cancelled() => return,
                r = changed.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
                _ = poll.tick() => {
                    match self.cache.poll().await {
                        // Changed by another process: we cannot tell for whom, so
                        // every member looks again (once per outside change).
                        Ok(true) => {
                            let view = self.cache.snapshot();
                            for course in view.courses() {
                                self.announce(&view, course, false);
                            }
                        }
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "course catalog poll failed"),
                    }
                }
                _ = tokio::time::sleep(sleep) => {
                    // Announced only once the wall clock has passed it: a
                    // student told early would see nothing new.
                    let now = crate::store::now_ms();
                    if next.is_some_and(|t| now >= t) {
                        self.announce_boundaries(&view, last, now);
                        last = now;
                    }
                }
            }
        }
    }

    /// Announce every course with a release or close time in `(from, to]`.
    fn announce_boundaries(&self, view: &CatalogView, from: i64, to: i64) {
        let within = |t: Option<i64>| t.is_some_and(|t| t > from && t <= to);
        for course in view.courses() {
            let hit = view.sections(course.id).iter().any(|s| {
                s.published
                    && (within(s.release_at_ms)
                        || within(s.close_at_ms)
                        || view
                            .exceptions_of(s.id)
                            .any(|e| within(e.release_at_ms) || within(e.close_at_ms))
                        || view
                            .releases(s.id)
                            .iter()
                            .any(|r| within(r.release_at_ms) || within(r.close_at_ms)))
            });
            if hit {
                self.announce(view, course, false);
            }
        }
    }
}

/// What student `user` sees of `section` at `now`: `None` when it is not
/// open to them, else the paths its rules hide from them.
fn student_view<'v>(
    view: &'v CatalogView,
    section: &Section,
    user: i64,
    now: i64,
) -> Option<visibility::Hidden<'v>> {
    visibility::student_view(
        section,
        view.releases(section.id),
        view.exception(section.id, user),
        now,
    )
}

/// Does student `user` see material `path` (`folder/rest`) of `course` at `now`?
fn shows_in(view: &CatalogView, course: i64, user: i64, path: &str, now: i64) -> bool {
    // Compared as the material stores names (NFC): a decomposed spelling of
    // a hidden name would otherwise miss its rule and still open the file.
    let path = workspace_fs::normalize_path(path);
    let (folder, rel) = path.split_once('/').unwrap_or((&path, ""));
    view.section_by_folder(course, folder)
        .and_then(|s| student_view(view, s, user, now))
        .is_some_and(|hidden| hidden.shows(rel))
}
