"""Print the recipe-search table from the runs' summary.json files (run from this folder)."""
import json
import pathlib
import tomllib

rows = []
for summary_path in sorted(pathlib.Path(".").glob("*/summary.json")):
    run = summary_path.parent
    summary = json.loads(summary_path.read_text())
    train = tomllib.loads((run / "config.toml").read_text())["train"]
    rows.append((run.name, train["batch_size"], train["lr_max"], train["weight_decay"], train["seed"],
                 summary["train_accuracy"], summary["monitor_accuracy"], summary["seconds"]))
print("| run | batch | peak lr | weight decay | seed | final train acc | monitor acc (1,000 test) | seconds |")
print("|---|---|---|---|---|---|---|---|")
for name, b, lr, wd, seed, tr, mon, sec in sorted(rows, key=lambda r: -r[6]):
    print(f"| {name} | {b} | {lr} | {wd:g} | {seed} | {100 * tr:.1f} % | {100 * mon:.1f} % | {sec:.0f} |")
