#!/usr/bin/env python3
"""Generates tests/corpus/: malformed experiment files made by mutating the shipped
experiments (truncation, wrong types, unknown and misspelt keys, out-of-range and huge
values, NaN/inf, deep nesting, non-UTF-8 bytes, a folder). Keeps only mutants that
`attnlab validate` rejects, so every file in the corpus must be answered with an error.

    python3 scripts/make_corpus.py path/to/attnlab
"""
import os, random, re, subprocess, sys, shutil

exe = sys.argv[1]
root = os.path.join(os.path.dirname(__file__), "..")
src = os.path.join(root, "experiments")
out = os.path.join(root, "tests", "corpus")
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
rng = random.Random(7)
shipped = {f: open(os.path.join(src, f), "rb").read() for f in sorted(os.listdir(src))}

def numbers(text):
    return [m for m in re.finditer(rb"(?m)^(\s*[\w.]+\s*=\s*)(-?[0-9][0-9_.e-]*)\s*$", text)]

def keys(text):
    return [m for m in re.finditer(rb"(?m)^(\s*)([a-z_]+)(\s*=)", text)]

def mutants(name, text):
    stem = name[:-5]
    for i in range(6):
        at = rng.randrange(1, len(text))
        yield f"{stem}-truncated-{i}", text[:at]
    nums = numbers(text)
    for i, m in enumerate(rng.sample(nums, min(6, len(nums)))):
        for tag, value in [("zero", b"0"), ("huge", b"1000000000000"), ("negative", b"-3"),
                           ("overflow", b"99999999999999999999999"), ("string", b'"many"'),
                           ("array", b"[1, 2]"), ("float", b"2.5"), ("bool", b"true")]:
            # d_ff = 0 became valid (attention-only blocks): that mutant is skipped,
            # after drawing, so every other file stays as generated before.
            if rng.random() < 0.45 and not (tag == "zero" and m.group(1).strip().startswith(b"d_ff")):
                yield f"{stem}-{tag}-{i}", text[:m.start(2)] + value + text[m.end(2):]
    ks = keys(text)
    for i, m in enumerate(rng.sample(ks, min(5, len(ks)))):
        key = m.group(2)
        if len(key) > 3:
            j = rng.randrange(len(key) - 1)
            typo = key[:j] + key[j + 1:j + 2] + key[j:j + 1] + key[j + 2:]
            if typo != key:
                yield f"{stem}-misspelt-{i}", text[:m.start(2)] + typo + text[m.end(2):]
        yield f"{stem}-unknown-{i}", text[:m.start()] + m.group(1) + b"frobnicate = 1\n" + text[m.start():]
    for tag, value in [("nan", b"nan"), ("inf", b"inf"), ("neginf", b"-inf")]:
        yield f"{stem}-lr-{tag}", re.sub(rb"(?m)^lr\s*=.*$", b"lr = " + value, text) if re.search(rb"(?m)^lr\s*=", text) else text.replace(b"[train]\n", b"[train]\nlr = " + value + b"\n", 1)
    yield f"{stem}-nonutf8", text[: len(text) // 2] + b"\xff\xfe\xc3\x28" + text[len(text) // 2:]
    yield f"{stem}-nul", text.replace(b"\n", b"\n\x00", 1)
    yield f"{stem}-window-0", text.replace(b"[model]\n", b"[model]\nattention = { kind = \"local\", window = 0 }\n", 1)
    yield f"{stem}-pattern-unknown", text.replace(b"[model]\n", b"[model]\nattention = \"locla\"\n", 1)
    yield f"{stem}-dilated-huge", text.replace(b"[model]\n", b"[model]\nattention = { kind = \"dilated\", window = 1000000000000, dilation = 1000000000000 }\n", 1)
    yield f"{stem}-vocab-huge", text.replace(b"[task]\n", b"[task]\nvocab = 1000000000\n", 1)
    yield f"{stem}-dup-key", text.replace(b"[task]\n", b"[task]\nseq_len = 64\nseq_len = 65\n", 1)
    yield f"{stem}-runs-no-name", text + b"\n[[runs]]\ntrain.steps = 3\n"
    yield f"{stem}-seed-huge", text.replace(b"[train]\n", b"[train]\nseed = 18446744073709551615\n", 1)

candidates = {}
for name, text in shipped.items():
    for stem, data in mutants(name, text):
        candidates[stem] = data
candidates["empty"] = b""
candidates["whitespace"] = b"   \n\t\n"
candidates["binary"] = bytes(rng.randrange(256) for _ in range(300))
candidates["deep-array"] = b"name = \"deep\"\nx = " + b"[" * 5000 + b"]" * 5000 + b"\n"
candidates["deep-table"] = b"name = \"deep\"\nx = " + b"{ a = " * 3000 + b"1" + b" }" * 3000 + b"\n"
candidates["long-name"] = b"name = \"" + b"n" * 5000 + b"\"\n"
candidates["many-runs"] = b"name = \"many\"\n" + b"".join(b"[[runs]]\nname = \"r%d\"\n" % i for i in range(10050))
candidates["same-run-names"] = b"name = \"x\"\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"a\"\n"
candidates["runs-not-table"] = b"name = \"x\"\nruns = 5\n"
candidates["task-not-table"] = b"name = \"x\"\ntask = \"recall\"\n"

kept = 0
for stem, data in sorted(candidates.items()):
    path = os.path.join(out, stem + ".toml")
    with open(path, "wb") as f:
        f.write(data)
    r = subprocess.run([exe, "validate", path], capture_output=True)
    if r.returncode == 0:
        os.remove(path)
    else:
        kept += 1
os.makedirs(os.path.join(out, "a-folder.toml"))
open(os.path.join(out, "a-folder.toml", "README"), "w").write("A folder named like an experiment file.\n")
print(f"{kept} malformed files (+ a folder) in tests/corpus")
