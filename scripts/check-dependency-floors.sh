#!/usr/bin/env bash
# Check that the dependency floors in pyproject.toml are real: install the package into a fresh
# virtual environment with every direct dependency pinned to its declared floor (each
# "name>=X" becomes the constraint "name==X"; transitive dependencies resolve as pip picks
# them), then run a quick subset of the tests. Not part of CI: it downloads old releases and
# takes a few minutes. Results are recorded in benchmarks/results/dependency-floors.md.
#
# Usage: scripts/check-dependency-floors.sh [--ref REV] [--extras LIST] [--keep] [-- PYTEST_ARGS...]
#   --ref REV      test the code (src/, tests/, ...) of commit REV instead of the working tree;
#                  pyproject.toml always comes from the working tree (its floors are checked)
#   --extras LIST  extras to install and pin too (default: test,video; with test, the lint
#                  runs too, at ruff's floor)
#   --keep         keep the temporary directory (venv, constraints, log) and print its path
#   PYTHON=...     the interpreter for the venv (default: python3)
#   after --       pytest arguments replacing the default test selection
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ref="" extras="test,video" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref=$2; shift 2 ;;
    --extras) extras=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --) shift; break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ $# -gt 0 ]; then
  pytest_args=("$@")
else
  # Quick (1-3 minutes on 2 cores), and between them they use every declared dependency: JAX's
  # multi-device training step (shard_map), equinox/optax/jaxtyping, tyro's CLI, tifffile/
  # imageio/matplotlib outputs (MP4 through imageio-ffmpeg), scipy/scikit-image in the metrics,
  # phantoms and DPC.
  pytest_args=(-q -x -p no:cacheprovider
    tests/test_config.py tests/test_hashgrid.py tests/test_engine.py tests/test_outputs.py
    tests/test_cli.py tests/test_mlp.py tests/test_host_random.py tests/test_io_dpc.py
    tests/test_metrics.py tests/test_phantoms.py -k "not demo")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nstm-floors.XXXXXX")
if [ "$keep" = 1 ]; then
  echo "temporary directory (kept): $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
tree="$tmp/tree"
mkdir -p "$tree"

# A copy of the project, so that building it leaves nothing in the checkout.
if [ -n "$ref" ]; then
  git -C "$repo" archive "$ref" | tar -x -C "$tree"
  cp "$repo/pyproject.toml" "$tree/pyproject.toml"
  echo "code: $(git -C "$repo" rev-parse --short "$ref"), pyproject.toml: working tree"
else
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -c 2>/dev/null) | tar -x -C "$tree"
  echo "code: working tree of $repo"
fi

python=${PYTHON:-python3}
"$python" -m venv "$tmp/venv"
vpy="$tmp/venv/bin/python"
"$vpy" -m pip install --quiet --upgrade pip

# name==floor for every "name>=floor" among the dependencies and the chosen extras. Extras
# that name the project itself (cuda = [".[cuda12]"]) and requirements with extras of their
# own (jax[cuda12]) are left out: they are not installed here.
"$vpy" - "$tree/pyproject.toml" "$extras" >"$tmp/constraints.txt" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = [e for e in sys.argv[2].split(",") if e]
reqs = list(project["dependencies"])
for extra in extras:
    reqs += project.get("optional-dependencies", {})[extra]
pattern = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)(;.*)?$")
for req in reqs:
    name, own_extras, spec, marker = pattern.match(req).groups()
    if own_extras or name.replace("_", "-").lower() == project["name"].lower():
        continue
    floors = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
    if not floors:
        sys.exit(f"no >= floor in {req!r}: every dependency needs one")
    print(f"{name}=={floors[0]}{marker or ''}")
EOF
echo "--- constraints (declared floors)"
cat "$tmp/constraints.txt"

target="$tree"
[ -n "$extras" ] && target="$tree[$extras]"
echo "--- installing (this downloads old releases: minutes)"
if ! "$vpy" -m pip install -c "$tmp/constraints.txt" "$target" >"$tmp/install.log" 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" "$tmp/install.log" | tail -30 >&2
  echo "FAIL: the declared floors cannot be installed together" >&2
  exit 1
fi
"$vpy" -m pip check

# Each pinned package must be installed at its floor; the rest is listed for the record.
"$vpy" - "$tmp/constraints.txt" <<'EOF'
import re, sys
from importlib.metadata import distributions, version

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def release(v):
    parts = v.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return parts

pinned, bad = set(), []
for line in open(sys.argv[1]):
    name, floor = line.split(";")[0].strip().split("==")
    pinned.add(norm(name))
    got = version(name)
    print(f"{name:16} floor {floor:12} installed {got}")
    if release(got) != release(floor):
        bad.append(name)
others = sorted({(norm(d.metadata["Name"]), d.version) for d in distributions()})
print("--- other packages installed")
print(" ".join(f"{n}=={v}" for n, v in others if n not in pinned and n != "pip"))
sys.exit(f"not at the floor: {bad}" if bad else 0)
EOF

echo "--- tests: pytest ${pytest_args[*]}"
cd "$tree"
export JAX_PLATFORMS=cpu NSTM_TEST_JAX_CACHE="$tmp/jax-cache" PATH="$tmp/venv/bin:$PATH"
"$tmp/venv/bin/python" -c "import nstm, sys; print('nstm', nstm.__version__, 'from', nstm.__file__); \
  sys.exit(0 if nstm.__file__.startswith('$tmp/venv/') else 'not the installed copy')"
"$tmp/venv/bin/python" -m pytest "${pytest_args[@]}"
if [ -x "$tmp/venv/bin/ruff" ]; then
  echo "--- lint at ruff's floor: ruff check src tests"
  "$tmp/venv/bin/ruff" check src tests
fi
echo "PASS: the declared floors install together and the tests pass ($(date -u +%F))"
