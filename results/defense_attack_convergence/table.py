"""Print this folder's table from eval/*/results.json (run from this folder)."""
import json
import pathlib


def describe(attack: dict) -> str:
    params = attack["params"]
    extra = [f"{key}={params[key]}" for key in ("steps", "queries", "restarts", "top_u") if params.get(key) not in (None, 1)]
    return attack["name"] + (f" ({', '.join(extra)})" if extra else "")


print("| folder | model | attacks in cascade order | clean | robust after each attack | worst case | seconds |")
print("|---|---|---|---|---|---|---|")
for folder in sorted(pathlib.Path("eval").iterdir()):
    spec = json.loads((folder / "spec.json").read_text())
    result = json.loads((folder / "results.json").read_text())
    model = "original PGD-AT ResNet-32" if spec["model"].endswith(".pt") else spec["model"]
    names = " → ".join(describe(a) for a in spec["attacks"])
    robust = " → ".join(f"{100 * a['robust_accuracy']:.1f} %" for a in result["attacks"])
    seconds = sum(a["seconds"] for a in result["attacks"])
    print(f"| {folder.name} | {model} | {names} | {100 * result['clean_accuracy']:.1f} % | {robust} | "
          f"{100 * result['worst_case_accuracy']:.1f} % | {seconds:.0f} |")
