//! The course catalog in memory: every course, member, section and exception,
//! indexed, in one immutable snapshot ([`CatalogView`]) that readers share.
//! Reading a course costs no query. A change made through this server reloads
//! the snapshot before the change is answered ([`CatalogCache::refresh`]); a
//! change made by another process (the CLI, another replica) moves the
//! catalog generation in the database, which [`CatalogCache::poll`] reads
//! (one indexed row) and reloads on. Concurrent reloads are one reload.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use campus_protocol::CourseRole;

use crate::error::AppError;
use crate::store::{Catalog, Course, DynStore, MaterialRelease, Member, Section, SectionException};

/// One immutable snapshot of the catalog, indexed for the reads courses make.
#[derive(Debug, Default)]
pub struct CatalogView {
    /// The catalog generation it was read at.
    pub generation: i64,
    courses: Vec<Course>,
    by_slug: HashMap<String, usize>,
    by_id: HashMap<i64, usize>,
    /// course id → user id → membership.
    members: HashMap<i64, BTreeMap<i64, Member>>,
    /// user id → (course id, role), by course slug.
    by_user: HashMap<i64, Vec<(i64, CourseRole)>>,
    /// course id → sections in order.
    sections: HashMap<i64, Vec<Section>>,
    /// (section id, user id) → exception.
    exceptions: HashMap<(i64, i64), SectionException>,
    all_exceptions: Vec<SectionException>,
    /// section id → its per-file rules, by path.
    releases: HashMap<i64, Vec<MaterialRelease>>,
}

impl CatalogView {
    /// Index a catalog read from the store.
    pub fn new(c: Catalog) -> Self {
        let by_slug = c
            .courses
            .iter()
            .enumerate()
            .map(|(i, c)| (c.slug.clone(), i))
            .collect();
        let by_id = c
            .courses
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let mut members: HashMap<i64, BTreeMap<i64, Member>> = HashMap::new();
        let mut by_user: HashMap<i64, Vec<(i64, CourseRole)>> = HashMap::new();
        for m in c.members {
            by_user
                .entry(m.user_id)
                .or_default()
                .push((m.course_id, m.role));
            members.entry(m.course_id).or_default().insert(m.user_id, m);
        }
        let mut sections: HashMap<i64, Vec<Section>> = HashMap::new();
        for s in c.sections {
            sections.entry(s.course_id).or_default().push(s);
        }
        let exceptions = c
            .exceptions
            .iter()
            .map(|e| ((e.section_id, e.user_id), e.clone()))
            .collect();
        let mut releases: HashMap<i64, Vec<MaterialRelease>> = HashMap::new();
        for r in c.releases {
            releases.entry(r.section_id).or_default().push(r);
        }
        let mut view = CatalogView {
            generation: c.generation,
            courses: c.courses,
            by_slug,
            by_id,
            members,
            by_user,
            sections,
            exceptions,
            all_exceptions: c.exceptions,
            releases,
        };
        let courses = &view.courses;
        let by_id = &view.by_id;
        let slug = |id: &i64| by_id.get(id).map(|&i| courses[i].slug.clone());
        for list in view.by_user.values_mut() {
            list.sort_by_key(|(id, _)| slug(id));
        }
        view
    }

    /// The course with this slug.
    pub fn course(&self, slug: &str) -> Option<&Course> {
        self.by_slug.get(slug).map(|&i| &self.courses[i])
    }

    /// The course with this id.
    pub fn course_by_id(&self, id: i64) -> Option<&Course> {
        self.by_id.get(&id).map(|&i| &self.courses[i])
    }

    /// Every course, by slug.
    pub fn courses(&self) -> &[Course] {
        &self.courses
    }

    /// `user`'s role in `course`, if a member.
    pub fn role(&self, course: i64, user: i64) -> Option<CourseRole> {
        self.members
            .get(&course)
            .and_then(|m| m.get(&user))
            .map(|m| m.role)
    }

    /// The courses `user` is a member of, by slug.
    pub fn courses_of(&self, user: i64) -> &[(i64, CourseRole)] {
        self.by_user.get(&user).map_or(&[], Vec::as_slice)
    }

    /// Members of `course`, by user id.
    pub fn members(&self, course: i64) -> impl Iterator<Item = &Member> {
        self.members
            .get(&course)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// The member of `course` with this username.
    pub fn member_named(&self, course: i64, username: &str) -> Option<&Member> {
        self.members(course).find(|m| m.username == username)
    }

    /// Sections of `course` in order.
    pub fn sections(&self, course: i64) -> &[Section] {
        self.sections.get(&course).map_or(&[], Vec::as_slice)
    }

    /// The section with this id in `course`.
    pub fn section(&self, course: i64, id: i64) -> Option<&Section> {
        self.sections(course).iter().find(|s| s.id == id)
    }

    /// The section whose folder is `folder` in `course`.
    pub fn section_by_folder(&self, course: i64, folder: &str) -> Option<&Section> {
        self.sections(course).iter().find(|s| s.folder == folder)
    }

    /// `user`'s exception for `section`.
    pub fn exception(&self, section: i64, user: i64) -> Option<&SectionException> {
        self.exceptions.get(&(section, user))
    }

    /// Exceptions of one section.
    pub fn exceptions_of(&self, section: i64) -> impl Iterator<Item = &SectionException> {
        self.all_exceptions
            .iter()
            .filter(move |e| e.section_id == section)
    }

    /// The per-file rules of one section, by path.
    pub fn releases(&self, section: i64) -> &[MaterialRelease] {
        self.releases.get(&section).map_or(&[], Vec::as_slice)
    }

    /// Every section, exception and per-file rule (for the release timer).
    pub fn all(
        &self,
    ) -> (
        impl Iterator<Item = &Section>,
        &[SectionException],
        impl Iterator<Item = &MaterialRelease>,
    ) {
        (
            self.sections.values().flatten(),
            &self.all_exceptions,
            self.releases.values().flatten(),
        )
    }
}

/// The shared, self-refreshing snapshot (see the module docs).
#[derive(Debug)]
pub struct CatalogCache {
    store: DynStore,
    current: RwLock<Arc<CatalogView>>,
    /// Set when the snapshot may be behind the database; the next read reloads.
    stale: AtomicBool,
    /// Counts invalidations: a reload clears `stale` only if none came while it read.
    changes: AtomicU64,
    reload: tokio::sync::Mutex<()>,
    loads: AtomicU64,
    changed: tokio::sync::watch::Sender<i64>,
}

impl CatalogCache {
    /// An empty cache that loads on first use.
    pub fn new(store: DynStore) -> Self {
        CatalogCache {
            store,
            current: RwLock::new(Arc::new(CatalogView::default())),
            stale: AtomicBool::new(true),
            changes: AtomicU64::new(0),
            reload: tokio::sync::Mutex::new(()),
            loads: AtomicU64::new(0),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// The current snapshot, reloaded first if it may be behind.
    pub async fn get(&self) -> Result<Arc<CatalogView>, AppError> {
        if !self.stale.load(Ordering::Acquire) {
            return Ok(self.snapshot());
        }
        let _one = self.reload.lock().await;
        // Another caller may have reloaded while we waited.
        if !self.stale.load(Ordering::Acquire) {
            return Ok(self.snapshot());
        }
        // Readers arriving meanwhile still see `stale` and wait for this
        // reload instead of being answered from the old snapshot.
        let seen = self.changes.load(Ordering::Acquire);
        let catalog = self.store.load_catalog().await?;
        let view = Arc::new(CatalogView::new(catalog));
        let generation = view.generation;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&view);
        // A change committed during the read leaves it stale for the next reader.
        if self.changes.load(Ordering::Acquire) == seen {
            self.stale.store(false, Ordering::Release);
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.changed.send_replace(generation);
        Ok(view)
    }

    /// The snapshot as it is, without reloading.
    pub fn snapshot(&self) -> Arc<CatalogView> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// After a change made here: reload before answering, so the next read sees it.
    pub async fn refresh(&self) -> Result<Arc<CatalogView>, AppError> {
        self.invalidate();
        self.get().await
    }

    /// Compare the database's generation with the snapshot's (one indexed
    /// read); mark the snapshot stale if another process changed the catalog.
    /// Returns true when it did.
    pub async fn poll(&self) -> Result<bool, AppError> {
        let generation = self.store.catalog_generation().await?;
        let behind = generation != self.snapshot().generation;
        if behind {
            self.invalidate();
            self.get().await?;
        }
        Ok(behind)
    }

    /// Mark the snapshot behind the database: the next read reloads.
    fn invalidate(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.stale.store(true, Ordering::Release);
    }

    /// How many times the catalog was read from the database.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Told the generation after each reload (the release timer waits on it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.changed.subscribe()
    }
}
