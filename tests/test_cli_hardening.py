"""Bad input on every command is one line and exit code 2, leaves nothing on
disk, runs nothing, and writes nowhere but where the user said (issue 7).

The big table runs in one interpreter per command (``_drive``: the CLI's own
``main(argv)`` for each row, as ``python -m slt_deploy.cli`` would run it) to
keep the file fast; a few rows per command also run as real processes.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import ROOT, assert_one_line_error, run_cli

CKPT = ROOT / "models" / "digits-mlp-slt.pt"
GRAPH = ROOT / "export" / "digits-mlp-slt.nir"
PROFILE = ROOT / "export" / "digits-mlp-slt.profile.json"
PREFIX = "slt-deploy: error:"

# --------------------------------------------------------------------------- batch runner

DRIVER = r"""
import contextlib, io, json, os, sys, traceback
from slt_deploy.cli import main

def snapshot(folders):
    seen = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs:
                seen[os.path.join(root, name)] = "dir"
            for name in files:
                st = os.lstat(os.path.join(root, name))
                seen[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
    return seen

rows = json.load(open(sys.argv[1]))
results = []
for row in rows:
    for folder in row["mkdirs"]:
        os.makedirs(folder, exist_ok=True)
    before = snapshot(row["watch"])
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(row["argv"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the interpreter would print, and its exit code
            traceback.print_exc()
            code = 1
    after = snapshot(row["watch"])
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    results.append({"code": code, "stderr": err.getvalue(), "stdout": out.getvalue(), "changed": changed})
json.dump(results, open(sys.argv[2], "w"))
"""


def _drive(rows: list[dict], cwd: Path, work: Path) -> list[dict]:
    """Run each row ({argv, watch, mkdirs}) through ``slt_deploy.cli.main`` in one fresh interpreter."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "rows.json").write_text(json.dumps(rows))
    done = subprocess.run([sys.executable, "-c", DRIVER, work / "rows.json", work / "results.json"], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    shutil.rmtree(work)
    return results


def _one_line_problem(result: dict, fragment: str) -> str | None:
    """Why ``result`` is not a one-line error containing ``fragment`` (None if it is)."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    if result["code"] != 2:
        return f"exit code {result['code']}: {result['stderr'][-600:]}"
    if "Traceback" in result["stderr"] or len(lines) != 1:
        return f"{len(lines)} lines on stderr: {result['stderr'][-600:]}"
    if not lines[0].startswith(PREFIX):
        return f"does not start with {PREFIX!r}: {lines[0]}"
    if fragment.lower() not in lines[0].lower():
        return f"{fragment!r} not in: {lines[0]}"
    return None


# --------------------------------------------------------------------------- fixtures


class Exploit:
    """Unpickling this runs `touch MARKER`: the payload of every hostile file here."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _metadata_variant(source: Path, target: Path, edit) -> Path:
    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        edit(f["node/metadata"])
    return target


def _ragged(*blobs: bytes) -> np.ndarray:
    array = np.empty(len(blobs), dtype=object)
    array[:] = [np.frombuffer(b, dtype=np.uint8) for b in blobs]
    return array


def _replace(group, key, **dataset):
    if key in group:
        del group[key]
    group.create_dataset(key, **dataset)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Inputs of the table: good files to aim bad options at, and bad files."""
    folder = tmp_path_factory.mktemp("fx")
    marker = folder / "PWNED"
    blob = pickle.dumps(Exploit(marker))
    pickle.loads(blob)  # the payload is live: unpickled, it runs the command ...
    assert marker.exists()
    marker.unlink()  # ... so a marker left by any test below means code ran

    shutil.copy(CKPT, folder / "ck.pt")
    shutil.copy(GRAPH, folder / "g.nir")
    shutil.copy(PROFILE, folder / "p.json")
    (folder / "adir").mkdir()
    (folder / "note.txt").write_text("a text file\n")
    (folder / "bad.json").write_text("not json{")
    (folder / "list.json").write_text("[1, 2, 3]")
    (folder / "bad.toml").write_text("[budget\n")
    (folder / "empty.npy").write_bytes(b"")
    np.save(folder / "good.npy", np.zeros((2, 8, 64), dtype=np.float32))
    np.save(folder / "obj.npy", np.array([Exploit(marker)], dtype=object), allow_pickle=True)
    _metadata_variant(GRAPH, folder / "noprofile.nir", lambda m: m.__delitem__("energy_profile_json"))
    # NIR metadata that is not plain data: a pickle as an opaque blob, as raw
    # bytes, an HDF5 object reference, a nested group; absurd values
    _metadata_variant(GRAPH, folder / "m_opaque.nir", lambda m: _replace(m, "energy_profile_json", data=np.void(blob)))
    _metadata_variant(GRAPH, folder / "m_bytes.nir", lambda m: _replace(m, "recipe_json", data=np.bytes_(blob)))
    _metadata_variant(GRAPH, folder / "m_ref.nir", lambda m: _replace(m, "method", data=m["beta"].ref,
                                                                        dtype=h5py.ref_dtype))
    _metadata_variant(GRAPH, folder / "m_nested.nir", lambda m: m.create_group("extra").create_dataset("x", data=1))
    _metadata_variant(GRAPH, folder / "m_objects.nir", lambda m: _replace(
        m, "labels", data=_ragged(b"a", blob), dtype=h5py.vlen_dtype(np.uint8)))
    _metadata_variant(GRAPH, folder / "m_hugeT.nir", lambda m: _replace(m, "latency_T", data=np.int64(10**15)))
    _metadata_variant(GRAPH, folder / "m_textT.nir", lambda m: _replace(m, "latency_T", data="eight",
                                                                          dtype=h5py.string_dtype()))
    _metadata_variant(GRAPH, folder / "m_code.nir", lambda m: _replace(
        m, "energy_profile_json", data=f"__import__('os').system('touch {marker}')", dtype=h5py.string_dtype()))
    profile = json.loads(PROFILE.read_text())
    profile["energy_mj"]["mean"] = ["__import__('os')"] * 8
    _metadata_variant(GRAPH, folder / "m_badprofile.nir", lambda m: _replace(
        m, "energy_profile_json", data=json.dumps(profile), dtype=h5py.string_dtype()))
    _write_data_files(folder, marker)
    return folder


CODE = "__import__('os').system('touch {marker}')"
HEAD = '[profile]\nname = "x"\nsource = "s"\nprocess_node = "p"\nprecision = "q"\nevidence = "measured"\n'
SCENARIOS = {  # name: (TOML, fragment of the error)
    "s_code": ('[budget]\nper_inference_mj = "' + CODE + '"\n', "must be a finite number"),
    "s_huge_int": ("[budget]\nbattery_mj = 1e300\ninferences = 9223372036854775807\n", "too long"),
    "s_bignum": ("[budget]\nper_inference_mj = 1" + "0" * 400 + "\n", "must be a finite number"),
    "s_overflow": ("[budget]\nbattery_mj = 1e308\nduration_s = 1e300\nrate_hz = 1e300\n", "too large"),
    "s_nested": ("[budget]\nper_inference_mj = 1\n[budget.extra]\nx = 1\n", "unknown budget keys"),
    "s_budget_text": ('budget = "battery"\n', "needs a [budget] section"),
    "s_policy_int": ("policy = 5\n[budget]\nper_inference_mj = 1\n", "[policy] must be a table"),
    "s_latency_text": ('[budget]\nper_inference_mj = 1\n[policy]\nname = "fixed"\nlatency = "4"\n', "policy latency"),
    "s_latency_float": ('[budget]\nper_inference_mj = 1\n[policy]\nname = "fixed"\nlatency = 2.5\n', "policy latency"),
    "s_latency_bool": ('[budget]\nper_inference_mj = 1\n[policy]\nname = "fixed"\nlatency = true\n', "policy latency"),
    "s_measure_table": ('[budget]\nper_inference_mj = 1\n[policy]\nname = "anytime"\nmeasure = {a = 1}\n',
                        "policy measure must be a string"),
    "s_name_table": ("name = {a = 1}\n[budget]\nper_inference_mj = 1\n", "'name' must be a string"),
    "s_dunder": ("__class__ = 1\n[budget]\nper_inference_mj = 1\n", "unknown sections or keys"),
    "s_date": ("[budget]\nper_inference_mj = 1979-05-27\n", "must be a finite number"),
    "s_deep": ("[budget]\nx = " + "[" * 5000 + "\n", "not valid TOML"),
}
HARDWARE = {
    "h_code": (HEAD + '[energy]\nsop_pj = "' + CODE + '"\n', "sop_pj must be a non-negative number"),
    "h_huge": (HEAD + "[energy]\nsop_pj = 1e308\n", "sop_pj must be a non-negative number"),
    "h_bignum": (HEAD + "[energy]\nsop_pj = 1" + "0" * 400 + "\n", "sop_pj must be a non-negative number"),
    "h_nested": (HEAD + "[energy]\nsop_pj = 0.1\n[energy.x]\na = 1\n", "unknown energy terms"),
    "h_name_table": (HEAD.replace('name = "x"', "name = {a = 1}") + "[energy]\nsop_pj = 1\n", "must be a string"),
    "h_source_list": (HEAD + "[energy]\nsop_pj = 1\n[sources]\nsop_pj = [1, 2]\n", "must be a string"),
    "h_unknown_key": (HEAD + 'hook = "' + CODE + '"\n[energy]\nsop_pj = 1\n', "unknown sections or keys"),
    "h_unknown_section": (HEAD + '[energy]\nsop_pj = 1\n[exec]\ncode = "' + CODE + '"\n', "unknown sections or keys"),
    "h_profile_text": ('profile = "x"\n[energy]\nsop_pj = 1\n', "needs [profile] and [energy]"),
}


def _profile_variant(edit) -> dict:
    data = json.loads(PROFILE.read_text())
    edit(data)
    return data


PROFILES = {  # profile JSON for `report`
    "j_latency_text": (_profile_variant(lambda p: p.update(latency="1..8")), "'latency'"),
    "j_energy_text": (_profile_variant(lambda p: p["energy_mj"].update(mean="x")), "'energy_mj.mean'"),
    "j_energy_huge": (_profile_variant(lambda p: p["energy_mj"].update(mean=[1e308] * 8)), "'energy_mj.mean'"),
    "j_accuracy_text": (_profile_variant(lambda p: p.update(accuracy=[CODE] * 8)), "'accuracy'"),
    "j_accuracy_short": (_profile_variant(lambda p: p.update(accuracy=[0.5] * 3)), "'accuracy'"),
    "j_layers": (_profile_variant(lambda p: p.update(layers=[{"__import__": "os"}])), "'layers'"),
    "j_hardware_text": (_profile_variant(lambda p: p.update(hardware=CODE)), "'hardware'"),
    "j_hardware_key": (_profile_variant(lambda p: p["hardware"].update(__class__="x")), "'hardware'"),
    "j_no_noise": (_profile_variant(lambda p: p.pop("noise")), "'noise'"),
    "j_noise_text": (_profile_variant(lambda p: p.update(noise={"gaussian:0.2": CODE})), "noise"),
    "j_nan": ({"energy_mj": float("nan"), "accuracy": float("nan")}, "is not a profile"),
}


def _write_data_files(folder: Path, marker: Path) -> None:
    for name, (text, _) in {**SCENARIOS, **HARDWARE}.items():
        (folder / f"{name}.toml").write_text(text.replace("{marker}", str(marker)))
    for name, (data, _) in PROFILES.items():
        (folder / f"{name}.json").write_text(json.dumps(data).replace("{marker}", str(marker)))


# --------------------------------------------------------------------------- the table

# {fx}: the fixtures above; {out}: an empty folder of this row (nothing may appear in it)
TABLE = {
    "train": [
        (["--resume", "{fx}/missing.pt"], "checkpoint not found"),  # missing file
        (["--resume", "{fx}/note.txt"], "corrupt or not a torch file"),  # wrong file type
        (["--resume", "{fx}/adir"], "checkpoint not found"),  # a folder
        (["--model", "{fx}/bad.toml"], "not valid TOML"),  # corrupt recipe
        (["--method", "foo"], "unknown method"),  # unknown value
        (["--backend", "foo"], "unknown training framework"),
        (["--epochs", "-1"], "epochs and batch size must be >= 1"),  # out of range
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--latency", "0"], "latency T must be >= 1"),
        (["--epochs", "many"], "--epochs"),  # not an int
        (["--bogus"], "No such option"),  # unknown option
        (["--epochs", "1", "-o", "{fx}/adir"], "is a folder"),  # output is a folder
        (["--epochs", "1", "-o", "{fx}/note.txt/x.pt"], "not a folder"),  # output under a file
        (["--epochs", "1", "-o", "/proc/slt-deploy/x.pt"], "cannot write"),  # unwritable
    ],
    "eval": [
        ([], "Missing argument"),
        (["{fx}/missing.pt"], "checkpoint not found"),
        (["{fx}/adir"], "checkpoint not found"),
        (["."], "checkpoint not found"),  # a folder with no name to derive the outputs' from
        (["{fx}/note.txt"], "corrupt or not a torch file"),
        (["{fx}/ck.pt", "--split", "foo", "-o", "{out}/e.json"], "unknown split"),
        (["{fx}/ck.pt", "--latency", "0", "-o", "{out}/e.json"], "latency must be >= 1"),
        (["{fx}/ck.pt", "--latency", "1000000", "-o", "{out}/e.json"], "at most"),
        (["{fx}/ck.pt", "--data", "imagenet", "-o", "{out}/e.json"], "unknown dataset"),
        (["{fx}/ck.pt", "-o", "{fx}/adir"], "is a folder"),
        (["{fx}/ck.pt", "-o", "{out}/plot.png"], "its PNG plot goes beside it"),
        (["{fx}/ck.pt", "-o", "{out}/new/.."], "is a folder"),
        (["{fx}/ck.pt", "-o", "{fx}/note.txt/e.json"], "not a folder"),
        (["{fx}/ck.pt", "-o", "{fx}/ck.pt"], "is the input file"),  # would overwrite the checkpoint
    ],
    "export": [
        (["{fx}/ck.pt"], "Missing option '--output'"),
        (["{fx}/missing.pt", "-o", "{out}/x.nir"], "checkpoint not found"),
        (["{fx}/p.json", "-o", "{out}/x.nir"], "corrupt or not a torch file"),
        (["{fx}/ck.pt", "-o", "{fx}/adir"], "is a folder"),
        (["{fx}/ck.pt", "-o", "/proc/slt-deploy/x.nir"], "cannot write"),
        (["{fx}/ck.pt", "-o", "{fx}/ck.pt"], "is the input file"),
        (["{fx}/ck.pt", "-o", "{out}/x.nir", "--profile", "{fx}/bad.json"], "not valid JSON"),
        (["{fx}/ck.pt", "-o", "{out}/x.nir", "--profile", "{fx}/list.json"], "not an accuracy profile"),
        (["{fx}/ck.pt", "-o", "{out}/x.nir", "--format", "onnx"], "No such option"),
    ],
    "run": [
        ([], "Missing argument"),
        (["{fx}/missing.nir", "--data", "digits"], "NIR file not found"),
        (["{fx}/adir", "--data", "digits"], "NIR file not found"),
        (["{fx}/ck.pt", "--data", "digits"], "not a NIR file"),
        (["{fx}/g.nir", "--data", "digits", "--backend", "foo"], "unknown backend"),
        (["{fx}/g.nir", "--data", "digits", "--samples", "0"], "--samples must be >= 1"),
        (["{fx}/g.nir", "--data", "digits", "--dt", "nan"], "--dt must be a positive"),
        (["{fx}/g.nir", "--data", "digits", "--latency", "99999999999"], "at most"),
        (["{fx}/g.nir", "--data", "digits", "--latency", "abc"], "--latency"),
        (["{fx}/g.nir", "--input", "{fx}/obj.npy"], "not a plain .npy array"),  # pickled objects
        (["{fx}/g.nir", "--input", "{fx}/empty.npy"], "not a plain .npy array"),
        (["{fx}/g.nir", "--input", "{fx}/good.npy", "--output", "{fx}/adir"], "is a folder"),
        (["{fx}/g.nir", "--input", "{fx}/good.npy", "--output", "{fx}/note.txt/y.npy"], "not a folder"),
        (["{fx}/g.nir", "--input", "{fx}/good.npy", "--output", "{fx}/good.npy"], "is the input file"),
    ],
    "profile": [
        (["{fx}/missing.nir"], "NIR file not found"),
        (["{fx}/adir"], "NIR file not found"),
        (["/"], "NIR file not found"),
        (["{fx}/note.txt", "-o", "{out}/p.json"], "not a NIR file"),
        (["{fx}/g.nir", "--hardware", "foo", "-o", "{out}/p.json"], "unknown hardware profile"),
        (["{fx}/g.nir", "--hardware", "../models/digits-mlp", "-o", "{out}/p.json"], "unknown hardware profile"),
        (["{fx}/g.nir", "--backend", "foo", "--samples", "2", "-o", "{out}/p.json", "--nir-out", "{out}/p.nir"],
         "unknown backend"),
        (["{fx}/g.nir", "--samples", "0", "-o", "{out}/p.json", "--nir-out", "{out}/p.nir"], "--samples must be"),
        (["{fx}/g.nir", "--latency", "0", "-o", "{out}/p.json"], "latency must be >= 1"),
        (["{fx}/g.nir", "--noise", "gaussian:nan", "-o", "{out}/p.json"], "noise strength out of range"),
        (["{fx}/g.nir", "-o", "{fx}/adir"], "is a folder"),
        (["{fx}/g.nir", "-o", "{out}/p.json", "--nir-out", "{fx}/note.txt/p.nir"], "not a folder"),
        (["{fx}/g.nir", "-o", "{fx}/g.nir"], "is the input file"),  # would overwrite the graph
        (["{fx}/g.nir", "--nproc", "0", "-o", "{out}/p.json"], "--nproc must be >= 1"),
        (["{fx}/g.nir", "--samples", "1", "--nproc", "2", "-o", "{out}/p.json", "--nir-out", "{out}/p.nir"],
         "2 processes for 1 samples"),
        (["{fx}/g.nir", "--compare-float", "-o", "{out}/p.json"], "--compare-float compares a fixed-point backend"),
        (["{fx}/g.nir", "-o", "{out}/x.nir", "--nir-out", "{out}/x.nir"], "would both be"),
    ],
    "report": [
        ([], "Missing argument"),
        (["{fx}/missing.json", "-o", "{out}/r"], "profile not found"),
        (["{fx}/adir", "-o", "{out}/r"], "profile not found"),
        (["{fx}/g.nir", "-o", "{out}/r"], "not valid JSON"),
        (["{fx}/list.json", "-o", "{out}/r"], "is not a profile"),
        (["{fx}/p.json", "{fx}/p.json", "{fx}/p.json", "-o", "{out}/r"], "give one profile, or two"),
        (["{fx}/p.json", "-o", "{fx}/note.txt"], "is a file, not a folder"),
        (["{fx}/p.json", "-o", "/proc/slt-deploy"], "cannot write"),
        (["{fx}/p.json", "--format", "pdf"], "No such option"),
    ],
    "control": [
        (["{fx}/missing.nir", "--per-inference-mj", "1"], "NIR file not found"),
        (["{fx}/g.nir", "--evaluate", "--nproc", "0", "-o", "{out}/c"], "--nproc must be >= 1"),
        (["{fx}/adir", "--per-inference-mj", "1"], "NIR file not found"),
        (["{fx}/ck.pt", "--per-inference-mj", "1", "-o", "{out}/c"], "not a NIR file"),
        (["{fx}/noprofile.nir", "--per-inference-mj", "1", "-o", "{out}/c"], "no energy profile"),
        (["{fx}/g.nir", "--policy", "foo", "--per-inference-mj", "1", "-o", "{out}/c"], "unknown policy"),
        (["{fx}/g.nir", "--backend", "foo", "--per-inference-mj", "1", "-o", "{out}/c"], "unknown backend"),
        (["{fx}/g.nir", "--per-inference-mj", "0", "-o", "{out}/c"], "must be a positive number"),
        (["{fx}/g.nir", "--per-inference-mj", "1e-12", "-o", "{out}/c"], "cannot be met even at t = 1"),
        (["{fx}/g.nir", "--battery-mj", "1", "-o", "{out}/c"], "needs a horizon"),
        (["{fx}/g.nir", "--per-inference-mj", "1", "--inferences", "1000000000000", "-o", "{out}/c"], "too long"),
        (["{fx}/g.nir", "--evaluate", "--budgets", "0", "-o", "{out}/c"], "--budgets must lie in 2..100"),
        (["{fx}/g.nir", "--evaluate", "--budgets", "1000000000", "-o", "{out}/c"], "--budgets must lie in 2..100"),
        (["{fx}/g.nir", "--reserve", "half", "--per-inference-mj", "1", "-o", "{out}/c"], "unknown reserve"),
        (["{fx}/g.nir", "--noise", "burst:3", "--per-inference-mj", "1", "-o", "{out}/c"], "shape the stream of --evaluate"),
        (["{fx}/g.nir", "--evaluate", "--noise", "burst:0.5", "-o", "{out}/c"], "noise strength out of range"),
        (["{fx}/g.nir", "--evaluate", "--noise", "hail:1", "-o", "{out}/c"], "unknown noise"),
        (["{fx}/g.nir", "--evaluate", "--drift", "-o", "{out}/c"], "--drift needs a --noise"),
        (["{fx}/g.nir", "--scenario", "{fx}/adir", "-o", "{out}/c"], "scenario not found"),
        (["{fx}/g.nir", "--scenario", "{fx}/bad.toml", "-o", "{out}/c"], "not valid TOML"),
        (["{fx}/g.nir", "--per-inference-mj", "1", "-o", "{fx}/note.txt"], "is a file, not a folder"),
    ],
    "import": [
        ([], "Missing argument"),
        (["{fx}/missing.net", "-o", "{out}/x.nir"], "netx network not found"),
        (["{fx}/adir", "-o", "{out}/x.nir"], "netx network not found"),
        (["{fx}/note.txt", "-o", "{out}/x.nir"], "not HDF5"),
        (["{fx}/g.nir", "-o", "{out}/x.nir"], "no 'layer' group: not a netx network"),
        (["{fx}/g.nir", "-o", "{fx}/adir"], "is a folder"),
        (["{fx}/g.nir", "-o", "{fx}/g.nir"], "is the input file"),
        (["{fx}/g.nir", "--compare", "-1", "-o", "{out}/x.nir"], "--compare must be >= 0"),
        (["{fx}/g.nir", "--input-shape", "a,b", "-o", "{out}/x.nir"], "--input-shape must be integers"),
        (["{fx}/g.nir", "--latency", "0", "-o", "{out}/x.nir"], "latency"),
    ],
    "inspect": [
        ([], "Missing argument"),
        (["{fx}/missing.nir"], "graph not found"),
        (["{fx}/adir"], "graph not found"),
        (["{fx}/note.txt"], "not a NIR file"),
        (["{fx}/g.nir", "--dt", "-1"], "--dt must be a positive number"),
        (["{fx}/m_code.nir", "--bogus"], "No such option"),
    ],
    "check-loihi2": [
        ([], "Missing argument"),
        (["{fx}/missing.nir"], "not found"),
        (["{fx}/note.txt"], "not a NIR file"),
        (["{fx}/g.nir", "--dt", "-1"], "--dt must be a positive number"),
        (["{fx}/g.nir", "-o", "{fx}/adir"], "is a folder"),
        (["{fx}/g.nir", "-o", "{fx}/g.nir"], "is the input file"),
        (["{fx}/g.nir", "--bogus"], "No such option"),
    ],
    "info": [
        (["--bogus"], "No such option"),
        (["extra"], "unexpected extra argument"),
    ],
    "demo": [
        (["--seeds", "0", "-o", "{out}/d"], "--seeds must be >= 1"),
        (["--seeds", "x"], "--seeds"),
        (["--model", "nope", "-o", "{out}/d"], "unknown model"),
        (["--model", "../models/digits-mlp.toml", "-o", "{out}/d"], "not a path"),
        (["--losses", "foo", "--seeds", "1", "--epochs", "1", "-o", "{out}/d"], "unknown loss"),
        (["--epochs", "0", "--seeds", "1", "-o", "{out}/d"], "epochs and batch size must be >= 1"),
        (["--seeds", "1", "-o", "{fx}/note.txt"], "is a file, not a folder"),
    ],
}


def test_the_table_covers_every_command():
    from slt_deploy.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert commands == set(TABLE)
    assert all(len(rows) >= 5 for name, rows in TABLE.items() if name != "info")  # info takes no options


def _rows(fx: Path, base: Path, command: str, cases) -> list[dict]:
    rows = []
    for index, (args, _) in enumerate(cases):
        out = base / "out" / str(index)
        argv = [command] + [a.format(fx=fx, out=out) for a in args]
        if command == "train" and "-o" not in argv:
            argv += ["-o", str(out / "t.pt")]  # an unexpected success must not write into runs/
        rows.append({"argv": argv, "watch": [str(fx), str(out), str(base / "cwd")], "mkdirs": [str(out)]})
    return rows


def _check_table(results, rows, cases, fx: Path) -> None:
    problems = []
    for result, row, (_, fragment) in zip(results, rows, cases):
        problem = _one_line_problem(result, fragment)
        if problem is None and result["changed"]:
            problem = f"left on disk: {result['changed']}"
        if problem:
            problems.append(f"{' '.join(row['argv'])}\n    {problem}")
    assert not problems, f"{len(problems)} of {len(rows)} rows failed:\n" + "\n".join(problems)
    assert not (fx / "PWNED").exists(), "a hostile file ran code"


@pytest.mark.parametrize("command", list(TABLE))
def test_bad_arguments_are_one_line_errors_and_leave_nothing(command, fx, tmp_path):
    (tmp_path / "cwd").mkdir()
    cases = TABLE[command]
    rows = _rows(fx, tmp_path, command, cases)
    _check_table(_drive(rows, tmp_path / "cwd", tmp_path / "driver"), rows, cases, fx)


def test_click_usage_errors_are_one_line_in_a_real_process():
    """Unknown options, missing arguments and bad numbers: Click's own errors,
    which print a usage box by default, come out as one line."""
    for args, fragment in [(["train", "--bogus"], "No such option: --bogus"),
                           (["eval"], "Missing argument 'checkpoint'"),
                           (["export", "x.pt"], "Missing option '--output'"),
                           (["run", "g.nir", "--samples", "many"], "Invalid value for '--samples'"),
                           (["profile"], "Missing argument 'model'"),
                           (["report", "--labels"], "Option '--labels' requires an argument"),
                           (["control", "g.nir", "--battery-mj", "lots"], "Invalid value for '--battery-mj'"),
                           (["info", "extra"], "unexpected extra argument"),
                           (["demo", "--seeds", "1.5"], "Invalid value for '--seeds'"),
                           (["nosuchcommand"], "No such command 'nosuchcommand'")]:
        assert_one_line_error(run_cli(*args), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["train", "--lr", "nan", "-o", "{tmp}/t.pt"], "--lr must be a finite number"),
    (["eval", "{fx}/note.txt", "-o", "{tmp}/e.json"], "corrupt or not a torch file"),
    (["export", "{fx}/ck.pt", "-o", "{fx}/adir"], "is a folder"),
    (["run", "{fx}/g.nir", "--input", "{fx}/obj.npy"], "not a plain .npy array"),
    (["profile", "{fx}/g.nir", "--latency", "0", "-o", "{tmp}/p.json"], "latency must be >= 1"),
    (["report", "{fx}/j_layers.json", "-o", "{tmp}/r"], "'layers'"),
    (["control", "{fx}/g.nir", "--scenario", "{fx}/s_huge_int.toml", "-o", "{tmp}/c"], "too long"),
    (["demo", "--model", "/etc/passwd", "-o", "{tmp}/d"], "not a path"),
])
def test_deep_errors_are_one_line_in_a_real_process(args, fragment, fx, tmp_path):
    """The same contract outside the batch runner: torch and the pipeline imported, then refused."""
    result = run_cli(*[a.format(fx=fx, tmp=tmp_path) for a in args], cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert not list(tmp_path.iterdir()) and not (fx / "PWNED").exists()


# --------------------------------------------------------------------------- (a) checkpoints: weights only


def test_a_checkpoint_that_would_run_code_is_refused_by_every_reader(tmp_path):
    """The payload is live (an unsafe torch.load runs it); eval, export,
    train --resume and profile refuse the file and the payload never runs."""
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    good = torch.load(CKPT, weights_only=True)
    torch.save({**good, "recipe": Exploit(marker)}, evil)
    torch.load(evil, weights_only=False)  # what an unsafe loader would do
    assert marker.exists()
    marker.unlink()
    for args in (["eval", evil, "-o", tmp_path / "e.json"], ["export", evil, "-o", tmp_path / "e.nir"],
                 ["train", "--resume", evil, "-o", tmp_path / "t.pt"],
                 ["profile", evil, "-o", tmp_path / "p.json", "--nir-out", tmp_path / "p.nir"]):
        assert_one_line_error(run_cli(*args), "refused by the safe loader")
        assert not marker.exists(), args
        assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"], args


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    else f.id if isinstance(f, ast.Name) else None)
            yield name, {k.arg: k.value for k in node.keywords}, node


def test_the_package_never_unpickles():
    """Every torch.load is weights_only=True, every np.load allow_pickle=False,
    and nothing calls pickle, eval or exec."""
    checked = []
    for path in sorted((ROOT / "slt_deploy").rglob("*.py")):
        for name, keywords, node in _calls(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name == "torch.load":
                assert isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True, where
                checked.append(where)
            if name in ("np.load", "numpy.load"):
                assert isinstance(keywords.get("allow_pickle"), ast.Constant) and keywords["allow_pickle"].value is False, where
                checked.append(where)
            assert name not in ("pickle.load", "pickle.loads", "pickle.Unpickler", "eval", "exec"), where
    assert len(checked) >= 3  # checkpoint.py, events.py (frame cache), cli.py (run --input)


# --------------------------------------------------------------------------- (b) NIR metadata is plain data


def _datasets(path: Path):
    found = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.append((name, item.dtype, dict(item.attrs)))
                     if isinstance(item, h5py.Dataset) else None)
    return found


def test_written_nir_files_hold_only_numbers_and_strings(tmp_path):
    """What export and profile write: numeric arrays and UTF-8 strings only (no
    opaque blobs, references or object arrays), the structured metadata as JSON text."""
    from slt_deploy.ir.nirfile import metadata_json, read_graph, write_graph

    out = tmp_path / "g.nir"
    write_graph(read_graph(GRAPH), out)
    for path in (GRAPH, out):
        for name, dtype, attrs in _datasets(path):
            assert not attrs, name
            assert dtype.kind in "biuf" or h5py.check_string_dtype(dtype) is not None, (name, dtype)
        graph = read_graph(path)
        for key in ("recipe_json", "accuracy_profile_json", "energy_profile_json"):
            assert isinstance(graph.metadata[key], str) and isinstance(metadata_json(graph, key), dict)
    graph = read_graph(GRAPH)
    graph.metadata["object"] = Exploit(tmp_path / "PWNED")
    with pytest.raises(TypeError, match="must be a number or a string"):
        write_graph(graph, tmp_path / "objects.nir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.nir"]


@pytest.mark.parametrize("name, fragment", [
    ("m_opaque", "binary data"), ("m_bytes", "not a valid NIR graph"), ("m_ref", "holds Reference"),
    ("m_nested", "holds dict"), ("m_objects", "array of object"), ("m_hugeT", "latency_T"), ("m_textT", "latency_T"),
])
def test_nir_metadata_that_is_not_plain_data_is_refused(name, fragment, fx):
    from slt_deploy.core.errors import UserError
    from slt_deploy.ir.nirfile import read_graph

    with pytest.raises(UserError, match=fragment):
        read_graph(fx / f"{name}.nir")
    assert not (fx / "PWNED").exists()


def test_hostile_nir_metadata_through_the_cli(fx, tmp_path):
    """run / profile / control on graphs whose metadata hold a pickle, a
    reference, code in a string, a malformed profile: one line each, no code runs."""
    cases = []
    for name, fragment in [("m_opaque", "binary data"), ("m_objects", "array of object"), ("m_ref", "Reference"),
                           ("m_hugeT", "latency_T"), ("m_textT", "latency_T")]:
        cases += [(["run", f"{{fx}}/{name}.nir", "--data", "digits", "--backend", "torch", "--samples", "2"], fragment),
                  (["profile", f"{{fx}}/{name}.nir", "--samples", "2", "--backend", "torch", "-o", "{out}/p.json",
                    "--nir-out", "{out}/p.nir"], fragment)]
    cases += [(["control", "{fx}/m_opaque.nir", "--per-inference-mj", "1", "-o", "{out}/c"], "binary data"),
              (["control", "{fx}/m_code.nir", "--per-inference-mj", "1", "-o", "{out}/c"], "not valid JSON"),
              (["control", "{fx}/m_badprofile.nir", "--per-inference-mj", "1", "-o", "{out}/c"], "'energy_mj.mean'")]
    (tmp_path / "cwd").mkdir()
    rows = []
    for index, (args, _) in enumerate(cases):
        out = tmp_path / "out" / str(index)
        rows.append({"argv": [a.format(fx=fx, out=out) for a in args],
                     "watch": [str(fx), str(out), str(tmp_path / "cwd")], "mkdirs": [str(out)]})
    _check_table(_drive(rows, tmp_path / "cwd", tmp_path / "driver"), rows, cases, fx)


# --------------------------------------------------------------------------- (c) TOML and JSON files are data


def test_scenario_hardware_and_profile_files_are_parsed_as_data(fx, tmp_path):
    """Strings of code, huge numbers, nested tables and wrong types in a
    scenario, a hardware profile or a profile JSON: one line each, nothing runs."""
    cases = [(["control", "{fx}/g.nir", "--scenario", f"{{fx}}/{name}.toml", "--backend", "torch", "--samples", "5",
               "-o", "{out}/c"], fragment) for name, (_, fragment) in SCENARIOS.items()]
    cases += [(["profile", "{fx}/g.nir", "--hardware", f"{{fx}}/{name}.toml", "--samples", "2", "--backend", "torch",
                "-o", "{out}/p.json", "--nir-out", "{out}/p.nir"], fragment) for name, (_, fragment) in HARDWARE.items()]
    cases += [(["report", f"{{fx}}/{name}.json", "-o", "{out}/r"], fragment) for name, (_, fragment) in PROFILES.items()]
    (tmp_path / "cwd").mkdir()
    rows = []
    for index, (args, _) in enumerate(cases):
        out = tmp_path / "out" / str(index)
        rows.append({"argv": [a.format(fx=fx, out=out) for a in args],
                     "watch": [str(fx), str(out), str(tmp_path / "cwd")], "mkdirs": [str(out)]})
    _check_table(_drive(rows, tmp_path / "cwd", tmp_path / "driver"), rows, cases, fx)


def test_shipped_hardware_profiles_and_scenarios_still_load():
    from slt_deploy.energy.hardware import available_hardware, load_hardware
    from slt_deploy.runtime.controller import Budget

    assert {"qiao2015", "loihi2018", "horowitz2014"} <= set(available_hardware())
    for name in available_hardware():
        assert load_hardware(name).name == name
    for path in (ROOT / "hardware").glob("*.scenario.toml"):
        budget, policy = Budget.from_scenario(path)
        assert budget.battery_mj or budget.per_inference_mj
        assert policy["name"] in ("fixed", "static", "adaptive", "anytime")


# --------------------------------------------------------------------------- (d) outputs stay where the user said


@pytest.mark.parametrize("name", ["../../evil", "/tmp/evil", "a/b", "..", "", "[/red]x", "evil\x00.pt", "~/x"])
def test_default_checkpoint_names_stay_in_runs(name):
    from slt_deploy.cli.training import _default_checkpoint_path
    from slt_deploy.models.zoo import load_recipe

    path = _default_checkpoint_path(dataclasses.replace(load_recipe("digits-mlp"), name=name))
    assert path.parent == Path("runs") and "/" not in path.name and "\x00" not in path.name
    assert not path.name.startswith(".") and path.name.endswith(".pt")


def test_names_from_files_never_leave_the_chosen_folder(tmp_path):
    """A recipe, a checkpoint, a graph and a profile all named '../../evil',
    labels '../../x', a file name with Rich markup: every file lands in the
    folder the user chose (or beside the input), named by the CLI."""
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    recipe = (ROOT / "models" / "digits-mlp.toml").read_text()
    assert 'name = "digits-mlp"' in recipe
    (work / "evil.toml").write_text(recipe.replace('name = "digits-mlp"', 'name = "../../evil"'))
    data = torch.load(CKPT, weights_only=True)
    data["recipe"]["name"] = "../../evil"
    torch.save(data, work / "ck.pt")
    profile = json.loads(PROFILE.read_text())
    profile["model"] = "../../evil"
    (work / "p.json").write_text(json.dumps(profile))
    graph = tmp_path / "a" / "b" / "g.nir"
    _metadata_variant(GRAPH, graph, lambda m: (
        _replace(m, "model", data="../../evil", dtype=h5py.string_dtype()),
        _replace(m, "energy_profile_json", data=json.dumps(profile), dtype=h5py.string_dtype())))
    before = {p for p in tmp_path.rglob("*")}
    rows = [
        ["train", "--model", "evil.toml", "--epochs", "1", "--batch-size", "2048", "-T", "1"],
        ["eval", "ck.pt", "--latency", "2"],
        ["export", "ck.pt", "-o", "nir/[/red]x.nir"],
        ["profile", "ck.pt", "--samples", "5", "--backend", "torch", "--latency", "2"],
        ["report", "p.json", "p.json", "--labels", "../../x,../y/z", "-o", "report"],
        ["control", str(graph), "--per-inference-mj", "1", "--backend", "torch", "--samples", "5", "-o", "control"],
    ]
    results = _drive([{"argv": argv, "watch": [str(tmp_path)], "mkdirs": []} for argv in rows], work, tmp_path / "d")
    for argv, result in zip(rows, results):
        assert result["code"] == 0, (argv, result["stderr"][-2000:])
    made = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p not in before and p.is_file()}
    assert made == {f"a/b/work/{name}" for name in (
        "runs/_.._evil-slt-tet-T1-s0.pt",
        "ck.eval.json", "ck.eval.png",
        "nir/[/red]x.nir",
        "ck.profile.json", "ck.nir",
        "report/report.md", "report/energy_vs_latency.png", "report/accuracy_vs_energy.png",
        "report/sop_per_layer.png",
        "control/mission.json", "control/timeline.png",
    )}, made
    assert "wrote nir/[/red]x.nir" in results[2]["stderr"]  # printed as given, not parsed as markup
    assert "../../x" in (work / "report" / "report.md").read_text()  # labels are text, never paths


def test_a_report_of_profiles_priced_at_zero_energy(tmp_path):
    """A hardware profile may price operations at 0 pJ: the comparison line must not divide by it."""
    from slt_deploy.report import check_profile, energy_report

    profile = json.loads(PROFILE.read_text())
    profile["energy_mj"] = {"mean": [0.0] * 8, "std": [0.0] * 8}
    check_profile(profile, "zero")
    written = energy_report({"a": profile, "b": profile}, tmp_path / "r")
    assert (tmp_path / "r" / "report.md") in written
