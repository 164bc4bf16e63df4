//! workspace-fs micro-benchmarks: durable 10 KiB and 1 MiB overwrites (the save path, history
//! copy included), 10 KiB read, 500-file listing, deleting and restoring a 50-file folder.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use workspace_fs::{Limits, Precondition, Workspaces};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Workspaces::new(
        dir.path().join("tree"),
        dir.path().join("meta"),
        Limits::default(),
    )
    .unwrap();
    let ws = reg.open("bench", None).unwrap();
    let body: Vec<u8> = (0..10 * 1024).map(|i| (i % 251) as u8).collect();
    ws.write("main.py", &body, Precondition::Overwrite).unwrap();
    for i in 0..499 {
        ws.write(
            &format!("f{i:03}.py"),
            b"print('hi')\n",
            Precondition::CreateOnly,
        )
        .unwrap();
    }

    // The full save path: temp file, fdatasync, history save of the old content, rename,
    // dir fsync.
    c.bench_function("write_10k_overwrite_durable", |b| {
        b.iter(|| ws.write("main.py", &body, Precondition::Overwrite).unwrap())
    });
    c.bench_function("read_10k", |b| b.iter(|| ws.read("main.py").unwrap()));
    c.bench_function("list_500_files", |b| {
        b.iter(|| {
            let l = ws.list("", false).unwrap();
            assert_eq!(l.len(), 500);
            l
        })
    });
    // (After the listing, which counts exactly 500 entries.)
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    ws.write("data.bin", &big, Precondition::Overwrite).unwrap();
    c.bench_function("write_1m_overwrite_durable", |b| {
        b.iter(|| ws.write("data.bin", &big, Precondition::Overwrite).unwrap())
    });
    for i in 0..50 {
        ws.write(&format!("proj/m{i:02}.py"), &body, Precondition::CreateOnly)
            .unwrap();
    }
    // A delete moves the folder to the trash (and seals it there); restore brings it back.
    c.bench_function("delete_restore_folder_50x10k", |b| {
        b.iter(|| {
            let item = ws.delete("proj").unwrap();
            ws.trash_restore(&item.trash_id, None).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
