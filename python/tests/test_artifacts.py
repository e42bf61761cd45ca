"""Versioned artifacts through the real SDK and the real `labbook` binary:
dedup, immutability, aliases, references, lineage, gc (with a concurrent
writer, and killed half-way) and the bad-input table (issue 11)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import labbook_bin

import labbook


@pytest.fixture(autouse=True)
def no_code_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """These runs work in a folder outside git, whose files (the data under
    test) a code snapshot would keep too: the counts below are of the
    versions and blobs the tests make themselves."""
    monkeypatch.setenv("LABBOOK_SNAPSHOT", "0")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [labbook_bin(), "--no-color", *args], capture_output=True, text=True, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"labbook {' '.join(args)} failed: {done.stderr}")
    return done


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def blobs(store: Path) -> dict[str, int]:
    root = store / "artifacts" / "blobs"
    if not root.is_dir():
        return {}
    found: dict[str, int] = {}
    for p in root.glob("*/*"):
        # A gc running beside the count may delete a blob between the
        # listing and the stat: it is gone, so it is not counted.
        try:
            found[p.name] = p.stat().st_size
        except FileNotFoundError:
            continue
    return found


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_data(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_the_same_content_twice_is_one_version_and_no_new_bytes(store: Path) -> None:
    data = make_data(Path("data"), {"train.npz": os.urandom(300_000), "sub/labels.csv": b"a,b\n"})
    run = labbook.init(project="p")
    art = labbook.Artifact("spirals", type="dataset", metadata={"split": "train", "rows": 1800})
    art.add_dir(str(data))
    v0 = run.log_artifact(art, aliases=["best"])
    assert (v0.version, v0.type, v0.qualified_name) == ("v0", "dataset", "spirals:v0")
    assert v0.metadata == {"split": "train", "rows": 1800}
    assert sorted(v0.aliases) == ["best", "latest"]
    assert [f["path"] for f in v0.files()] == ["sub/labels.csv", "train.npz"], (
        "add_dir puts the folder's files at the root"
    )
    before = blobs(store)
    assert len(before) == 2

    again = labbook.Artifact("spirals")
    again.add_dir(str(data))
    same = run.log_artifact(again)
    assert (same.version, same.digest) == ("v0", v0.digest)
    assert blobs(store) == before, "no new bytes"
    # The CLI says so too, and stores nothing.
    out = cli("artifact", "log", str(data), "--name", "spirals", "--project", "p").stdout
    assert "unchanged" in out and "spirals:v0" in out
    assert blobs(store) == before

    # The same bytes under another name are a version of that name, and
    # still one blob per content.
    other = run.log_artifact(str(data), name="spirals-copy")
    assert other.version == "v0" and other.digest == v0.digest
    assert blobs(store) == before
    run.finish()


def test_versions_are_immutable_and_numbers_never_change_meaning(
    store: Path, tmp_path: Path
) -> None:
    data = make_data(Path("data"), {"x.txt": b"one"})
    run = labbook.init(project="p")
    v0 = run.log_artifact(str(data), name="ds")
    (data / "x.txt").write_bytes(b"two")
    v1 = run.log_artifact(str(data), name="ds")
    assert (v0.version, v1.version) == ("v0", "v1")
    assert v0.digest != v1.digest
    assert v1.aliases == ["latest"] and v0.aliases == []

    # v0 still holds what it held.
    got = Path(run.use_artifact("ds:v0").download(str(tmp_path / "v0")))
    assert (got / "x.txt").read_bytes() == b"one"
    assert not os.access(got / "x.txt", os.W_OK) or os.geteuid() == 0
    assert (os.stat(got / "x.txt").st_mode & 0o222) == 0, "downloads are read-only"

    # A deleted number is not reused: the next version is v2.
    cli("artifact", "rm", "ds:v1")
    assert run.use_artifact("ds:latest").version == "v0", (
        "latest moves back to the newest live version"
    )
    (data / "x.txt").write_bytes(b"three")
    assert run.log_artifact(str(data), name="ds").version == "v2"
    shown = cli_json("artifact", "show", "ds:v1")
    assert shown["deleted_ms"] is not None
    with pytest.raises(labbook.LabbookError, match="deleted"):
        run.use_artifact("ds:v1")
    run.finish()


def test_aliases_move_and_latest_is_labbooks(store: Path) -> None:
    data = make_data(Path("d"), {"f": b"1"})
    run = labbook.init(project="p")
    run.log_artifact(str(data), name="m", type="model", aliases=["best"])
    (data / "f").write_bytes(b"2")
    run.log_artifact(str(data), name="m", type="model", aliases=["best", "candidate"])
    assert run.use_artifact("m:best").version == "v1"
    cli("artifact", "alias", "m:v0", "best")
    assert run.use_artifact("m:best").version == "v0"
    assert run.use_artifact("m:candidate").version == "v1"
    cli("artifact", "alias", "m:v1", "candidate", "--remove")
    with pytest.raises(KeyError):
        run.use_artifact("m:candidate")
    for bad in ("latest", "v7", "a/b", "a:b", ""):
        done = cli("artifact", "alias", "m:v0", bad, check=False)
        assert done.returncode == 1 and "alias" in done.stderr, bad
    listed = {a["name"]: a for a in cli_json("artifact", "ls", "--type", "model")}
    assert dict(map(tuple, listed["m"]["aliases"])) == {"best": 0, "latest": 1}
    with pytest.raises(ValueError, match="is a model, not a dataset"):
        run.log_artifact(str(data), name="m", type="dataset")
    run.finish()


def test_a_reference_that_changes_is_named_and_nothing_is_recorded(store: Path) -> None:
    big = make_data(Path("/tmp") / f"lb-ref-{os.getpid()}", {"a.bin": b"a" * 1000, "b/c.bin": b"c"})
    try:
        run = labbook.init(project="p")
        ds = run.use_dataset(str(big), name="imagenet")
        assert ds.type == "dataset"
        assert {f["path"]: f["reference"] for f in ds.files()} == {
            "a.bin": f"file://{big.resolve()}/a.bin",
            "b/c.bin": f"file://{big.resolve()}/b/c.bin",
        }
        assert blobs(store) == {}, "use_dataset copies nothing"
        assert [r["role"] for r in ds.runs()] == ["input"]
        assert ds.verify() == []

        art = labbook.Artifact("imagenet-ref")
        art.add_reference(f"file://{big.resolve()}")
        ref = run.log_artifact(art)
        run.finish()

        (big / "b" / "c.bin").write_bytes(b"changed")
        (big / "a.bin").unlink()
        reader = labbook.init(project="p")
        with pytest.raises(labbook.LabbookError) as failure:
            reader.use_artifact("imagenet-ref")
        message = str(failure.value)
        assert (
            "imagenet-ref:v0" in message
            and "b/c.bin (changed)" in message
            and "a.bin (missing)" in message
        )
        assert [r["role"] for r in ref.runs()] == ["output"], "the failed use recorded no input"
        assert {c["path"]: c["state"] for c in ref.verify()} == {
            "a.bin": "missing",
            "b/c.bin": "changed",
        }
        reader.finish()
    finally:
        for p in sorted(big.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        big.rmdir()


def test_lineage_runs_from_dataset_through_model_to_evaluation(store: Path) -> None:
    data = make_data(Path("data"), {"train.csv": b"x\n1\n"})
    prep = labbook.init(project="p", name="prep")
    prep.log_artifact(str(data), name="spirals")
    prep.finish()
    train = labbook.init(project="p", name="train")
    train.use_artifact("spirals:latest")
    Path("model.pt").write_bytes(b"weights")
    model = train.log_model("model.pt", name="mlp", aliases=["best"])
    assert model.type == "model" and model.producer == train.id
    train.finish()
    evaluate = labbook.init(project="p", name="eval")
    evaluate.use_artifact("mlp:best", type="model")
    evaluate.finish()

    graph = cli_json("lineage", "mlp:v0")
    names = {n["id"]: (n.get("name"), n["kind"]) for n in graph["nodes"]}
    assert graph["root"] == "p/mlp:v0"
    edges = {(names[e["from"]][0], names[e["to"]][0]) for e in graph["edges"]}
    assert edges == {("prep", "spirals"), ("spirals", "train"), ("train", "mlp"), ("mlp", "eval")}

    from_run = cli_json("lineage", train.id)
    assert from_run["root"] == train.id
    assert len(from_run["nodes"]) == 5
    text = cli("lineage", "spirals").stdout
    assert "↓ run" in text and "mlp:v0" in text and "eval" in text
    shown = cli_json("artifact", "show", "mlp")
    assert {(r["run_name"], r["role"]) for r in shown["runs"]} == {
        ("train", "output"),
        ("eval", "input"),
    }


def test_get_and_diff_from_the_cli(store: Path, tmp_path: Path) -> None:
    cli("init")
    data = make_data(Path("data"), {"keep": b"k", "change": b"1", "drop": b"d"})
    cli("artifact", "log", str(data), "--name", "ds", "--project", "p", "--alias", "first")
    (data / "change").write_bytes(b"2")
    (data / "drop").unlink()
    (data / "new").write_bytes(b"n")
    cli("artifact", "log", str(data), "--name", "ds", "--project", "p")
    diff = cli_json("artifact", "diff", "ds:first", "ds:latest")
    assert (diff["added"], diff["removed"], diff["changed"]) == (["new"], ["drop"], ["change"])
    out = tmp_path / "got"
    cli("artifact", "get", "ds:v0", "-o", str(out))
    assert tree(out) == {"change": b"1", "drop": b"d", "keep": b"k"}
    # Again into the same folder: nothing to do, nothing broken.
    cli("artifact", "get", "ds:v0", "-o", str(out))
    assert tree(out) == {"change": b"1", "drop": b"d", "keep": b"k"}


def test_gc_frees_only_what_nothing_live_references(store: Path) -> None:
    data = make_data(Path("data"), {"shared": b"shared bytes", "only-v0": b"v0 bytes"})
    run = labbook.init(project="p")
    run.log_artifact(str(data), name="ds")
    (data / "only-v0").unlink()
    (data / "only-v1").write_bytes(b"v1 bytes")
    run.log_artifact(str(data), name="ds")
    run.finish()
    assert len(blobs(store)) == 3
    assert cli_json("gc", "--dry-run")["blobs"] == [], "nothing deleted yet"

    cli("artifact", "rm", "ds:v0")
    dry = cli_json("gc", "--dry-run")
    assert dry["versions_purged"] == ["ds:v0"]
    assert [b["size"] for b in dry["blobs"]] == [len(b"v0 bytes")]
    assert dry["bytes"] == len(b"v0 bytes")
    assert len(blobs(store)) == 3, "a dry run frees nothing"
    done = cli_json("gc")
    assert done["blobs"] == dry["blobs"]
    assert len(blobs(store)) == 2
    again = cli_json("gc")
    assert again["blobs"] == [] and again["versions_purged"] == []
    shown = cli_json("artifact", "show", "ds:v0")
    assert shown["purged"] is True
    assert cli("artifact", "get", "ds:v0", "-o", "x", check=False).returncode == 1
    reader = labbook.init(project="p")
    got = Path(reader.use_artifact("ds:latest").download("v1"))
    assert tree(got) == {"only-v1": b"v1 bytes", "shared": b"shared bytes"}
    reader.finish()


WRITER = """
import labbook, os, sys, pathlib
root = pathlib.Path(sys.argv[1])
run = labbook.init(project="p", system_metrics=False)
for i in range(int(sys.argv[2])):
    d = root / f"w{i}"
    d.mkdir()
    # The same contents each time: every log after the first finds the blob
    # present, the very case a collector could race.
    (d / "f.bin").write_bytes(b"contended" * 1000)
    (d / f"own{i}").write_bytes(os.urandom(64))
    v = run.log_artifact(str(d), name=f"a{i % 3}")
    print(v.qualified_name, flush=True)
run.finish()
"""

DELETER = """
import subprocess, sys
bin = sys.argv[1]
for i in range(int(sys.argv[2])):
    for name in ("a0", "a1", "a2"):
        subprocess.run([bin, "artifact", "rm", f"{name}:latest"], capture_output=True)
    subprocess.run([bin, "gc"], capture_output=True, check=True)
"""


def live_versions_are_whole(store: Path, tmp_path: Path) -> int:
    """Downloads every live version with the CLI and checks each file's
    size against its manifest; returns how many versions were checked."""
    with sqlite3.connect(store / "labbook.db") as conn:
        live = [
            f"{name}:v{version}"
            for name, version in conn.execute(
                "SELECT n.name, v.version FROM artifact_versions v "
                "JOIN artifact_names n ON n.id = v.name_id WHERE v.deleted_ms IS NULL"
            )
        ]
    for ref in live:
        out = tmp_path / f"check-{ref.replace(':', '-')}"
        cli("artifact", "get", ref, "-o", str(out))
        files = {f["path"]: f for f in cli_json("artifact", "show", ref)["file_list"]}
        assert set(tree(out)) == set(files), ref
        for rel, f in files.items():
            assert (out / rel).stat().st_size == f["size"], (ref, rel)
    return len(live)


def test_gc_beside_a_concurrent_writer_loses_nothing_referenced(
    store: Path, tmp_path: Path
) -> None:
    cli("init")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "LABBOOK_DIR": str(store)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(work), "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deleter = subprocess.Popen(
        [sys.executable, "-c", DELETER, labbook_bin(), "25"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    w_out, w_err = writer.communicate(timeout=300)
    _, d_err = deleter.communicate(timeout=300)
    assert writer.returncode == 0, w_err
    assert deleter.returncode == 0, d_err
    assert len(w_out.split()) == 60
    # Contents the collector may just have freed, logged once more.
    again = work / "again"
    again.mkdir()
    (again / "f.bin").write_bytes(b"contended" * 1000)
    run = labbook.init(project="p", dir=str(store))
    run.log_artifact(str(again), name="a0")
    run.finish()
    assert live_versions_are_whole(store, tmp_path) > 0
    with sqlite3.connect(store / "labbook.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        live_hashes = {
            h
            for (h,) in conn.execute(
                "SELECT f.hash FROM artifact_files f JOIN artifact_versions v ON v.id = f.version_id "
                "WHERE v.deleted_ms IS NULL AND f.reference IS NULL"
            )
        }
    assert live_hashes <= set(blobs(store)), "every live version's contents are on disk"


def test_gc_killed_half_way_leaves_the_store_consistent(store: Path, tmp_path: Path) -> None:
    cli("init")
    data = tmp_path / "many"
    data.mkdir()
    for i in range(4000):
        (data / f"f{i:05}").write_bytes(os.urandom(32))
    cli("artifact", "log", str(data), "--name", "doomed", "--project", "p")
    (data / "keep").write_bytes(b"kept")
    for i in range(0, 4000, 2):
        (data / f"f{i:05}").unlink()
    cli("artifact", "log", str(data), "--name", "kept", "--project", "p")
    cli("artifact", "rm", "doomed:v0")
    expected = cli_json("gc", "--dry-run")
    assert len(expected["blobs"]) == 2000

    # Batches of 1,024 blobs with a pause between them (a test knob), so
    # the kill lands after the first batch however fast the disk is.
    gc = subprocess.Popen(
        [labbook_bin(), "gc"],
        env={**os.environ, "LABBOOK_DIR": str(store), "LABBOOK_GC_PAUSE_MS": "3000"},
    )
    deadline = time.monotonic() + 30
    while len(blobs(store)) > 4001 - 1024 and time.monotonic() < deadline and gc.poll() is None:
        time.sleep(0.01)
    gc.send_signal(signal.SIGKILL)
    gc.wait()
    left = len(blobs(store))
    assert left == 4001 - 1024, f"the kill did not land between the batches: {left} blobs left"

    with sqlite3.connect(store / "labbook.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert live_versions_are_whole(store, tmp_path) == 1
    rest = cli_json("gc")
    assert len(rest["blobs"]) == left - 2001
    assert len(blobs(store)) == 2001
    assert live_versions_are_whole(store, tmp_path) == 1


def bad(call: Any, *needles: str, error: type[BaseException] = Exception) -> None:
    with pytest.raises(error) as failure:
        call()
    message = str(failure.value)
    for n in needles:
        assert n in message, (n, message)


def test_bad_input_is_one_clear_error_and_changes_nothing(store: Path, tmp_path: Path) -> None:
    data = make_data(Path("data"), {"ok.txt": b"ok"})
    run = labbook.init(project="p")
    good = run.log_artifact(str(data), name="good")
    before_blobs = blobs(store)

    bad(lambda: labbook.Artifact("has space"), "name", "' '", error=ValueError)
    bad(lambda: labbook.Artifact("a/b"), "'/'", error=ValueError)
    bad(lambda: labbook.Artifact("x" * 200), "longer than 128", error=ValueError)
    bad(lambda: labbook.Artifact("ok", type="bad type"), "type", error=ValueError)
    bad(
        lambda: run.log_artifact(str(data), name="good", aliases=["a/b"]),
        "alias",
        "'/'",
        error=ValueError,
    )
    bad(
        lambda: run.log_artifact(str(data), name="good", aliases=["x:y"]),
        "alias",
        "':'",
        error=ValueError,
    )
    art = labbook.Artifact("missing")
    bad(lambda: art.add_file("nope.bin"), "artifact missing", "nope.bin", error=ValueError)
    bad(lambda: art.add_dir("nope"), "artifact missing", "not a folder", error=ValueError)
    bad(lambda: art.add_file(str(data / "ok.txt"), name="../escape"), "'..'", error=ValueError)

    # A link out of an added folder is refused by name, never silently dropped.
    (tmp_path / "secret").write_bytes(b"outside")
    linked = make_data(tmp_path / "linked", {"in.txt": b"in"})
    (linked / "leak").symlink_to(tmp_path / "secret")
    art = labbook.Artifact("linked")
    art.add_dir(str(linked))
    bad(
        lambda: run.log_artifact(art),
        "artifact linked",
        "leak",
        "links outside the folder",
        error=ValueError,
    )
    # A link inside the folder is followed: the file is stored under the link's name.
    (linked / "leak").unlink()
    (linked / "alias.txt").symlink_to(linked / "in.txt")
    inside = run.log_artifact(art)
    assert {f["path"] for f in inside.files()} == {"alias.txt", "in.txt"}

    # A file that a file removed between add and log is named.
    gone = make_data(tmp_path / "gone", {"f": b"f"})
    art = labbook.Artifact("gone")
    art.add_file(str(gone / "f"))
    (gone / "f").unlink()
    bad(lambda: run.log_artifact(art), "artifact gone", "f")

    bad(lambda: run.use_artifact("nosuch:latest"), "nosuch", error=KeyError)
    bad(lambda: run.use_artifact("good:v9"), "good:v9", error=KeyError)
    bad(lambda: run.use_artifact("good:v99999999999999999999999"), "version", error=ValueError)
    bad(
        lambda: run.use_artifact("good", type="model"),
        "is a dataset, not a model",
        error=ValueError,
    )
    art = labbook.Artifact("s3ref")
    art.add_reference("s3://bucket/key")
    bad(lambda: run.log_artifact(art), "s3://", "only file://", error=ValueError)
    bad(
        lambda: run.log_artifact(labbook.Artifact("empty")),
        "artifact empty",
        "no files",
        error=ValueError,
    )

    # Nothing already stored changed.
    assert run.use_artifact("good").digest == good.digest
    assert all(h in blobs(store) for h in before_blobs)
    assert {a["name"] for a in cli_json("artifact", "ls")} == {"good", "linked"}
    run.finish()


def test_a_file_changing_while_it_is_hashed_is_refused_by_name(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(os.urandom(32 * 1024 * 1024))
    stop = threading.Event()

    def rewrite() -> None:
        # Appended to in place, as a checkpoint being written is.
        with path.open("ab") as f:
            while not stop.is_set():
                f.write(b"more" * 256)
                f.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=rewrite)
    run = labbook.init(project="p")
    writer.start()
    refused = 0
    try:
        for _ in range(30):
            art = labbook.Artifact("moving")
            try:
                art.add_file(str(path))
                run.log_artifact(art)
            except ValueError as e:
                if "changed while it was" in str(e):
                    assert "artifact moving" in str(e) and "growing.bin" in str(e)
                    refused += 1
            except (labbook.LabbookError, OSError) as e:
                assert "growing.bin" in str(e)
    finally:
        stop.set()
        writer.join()
    run.finish()
    assert refused > 0, "no log saw the file change"


@pytest.mark.required_in_ci
def test_a_full_disk_during_a_log_is_a_clear_error_and_loses_nothing(
    small_disk: Path, tmp_path: Path
) -> None:
    store = small_disk / ".labbook"
    small = make_data(tmp_path / "small", {"a": b"a" * 1000})
    run = labbook.init(project="disk", dir=str(store), system_metrics=False)
    kept = run.log_artifact(str(small), name="kept")
    big = make_data(tmp_path / "big", {f"f{i}": os.urandom(1024 * 1024) for i in range(12)})
    with pytest.raises(labbook.LabbookError, match="disk is full") as failure:
        run.log_artifact(str(big), name="big")
    assert "artifact big" in str(failure.value)
    assert not any((store / "artifacts" / "tmp").iterdir()), "no temp file is left behind"
    with sqlite3.connect(store / "labbook.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    got = Path(run.use_artifact("kept").download(str(tmp_path / "kept")))
    assert (got / "a").read_bytes() == b"a" * 1000
    assert kept.digest == run.use_artifact("kept").digest
    with pytest.raises(KeyError):
        run.use_artifact("big")
    run.finish()


def test_a_purged_run_leaves_its_versions_and_gc_frees_what_only_it_held(store: Path) -> None:
    data = make_data(Path("data"), {"w.bin": b"weights"})
    run = labbook.init(project="p", name="short-lived")
    version = run.log_model(str(data / "w.bin"), name="net")
    run.finish()
    cli("rm", "--purge", run.id)
    listed = {r["id"] for r in cli_json("ls", "--all-projects", "--deleted")}
    assert run.id not in listed and run.id not in {r["id"] for r in cli_json("ls", "-A")}
    shown = cli_json("artifact", "show", "net")
    assert shown["digest"] == version.digest, "the version outlives the run"
    graph = cli_json("lineage", "net")
    assert [n["status"] for n in graph["nodes"] if n["kind"] == "run"] == ["deleted"]
    assert cli_json("gc")["blobs"] == [], "the version still holds the contents"
    cli("artifact", "rm", "net:v0")
    freed = cli_json("gc")
    assert freed["bytes"] == len(b"weights")
    assert blobs(store) == {}


def test_a_file_rewritten_with_its_old_times_is_still_seen_as_changed(store: Path) -> None:
    data = make_data(Path("data"), {"a.bin": b"first", "b.bin": b"other"})
    old = time.time() - 3600
    for f in data.iterdir():
        os.utime(f, (old, old))
    run = labbook.init(project="p")
    assert run.log_artifact(str(data), name="ds").version == "v0"
    # Unchanged: the remembered tree answers.
    assert run.log_artifact(str(data), name="ds").version == "v0"
    # Same size, same modification time set back by hand (as `touch -r`,
    # rsync -t or a restore do): the change time still differs.
    (data / "a.bin").write_bytes(b"fifth")
    os.utime(data / "a.bin", (old, old))
    changed = run.log_artifact(str(data), name="ds")
    assert changed.version == "v1"
    assert {f["path"]: f["size"] for f in changed.files()} == {"a.bin": 5, "b.bin": 5}
    out = Path(changed.download("got"))
    assert (out / "a.bin").read_bytes() == b"fifth"
    run.finish()
