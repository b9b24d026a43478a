"""Device run: train the default architecture on CUDA on the carried train-split data,
the schedule sized to a wall-clock budget from a short probe run."""
import dataclasses, json, os, shutil, sys, time
from pathlib import Path

T0 = time.time()
DEADLINE = T0 + float(sys.argv[1])          # seconds this script may use
OUT = Path(os.environ.get("OUT", "/tmp/out")) / os.environ.get("TAG", "")
RUN = Path(os.environ.get("RUN", "/tmp/run"))
BATCH, LR, WORKERS = int(sys.argv[2]), float(sys.argv[3]), int(os.environ.get("WORKERS", 12))

import torch
GPU = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
from anchorudf.config import load_params
from anchorudf.data.cache import SampleReader
from anchorudf.train.data import GarmentViewDataset, view_refs
from anchorudf.train.trainer import train

D = Path(os.environ.get("DATA", ".devrun/data"))
S = ["sample.points_per_garment=7500", "sample.uniform_ratio=0.15", "sample.ratios=[0.18,0.41,0.41]",
     f"train.device={os.environ.get('DEV_DEVICE', 'cuda')}", f"train.batch_size={BATCH}", f"train.lr={LR}", f"train.num_workers={WORKERS}",
     "train.ckpt_every=1000", "train.log_every=50"] + os.environ.get("EXTRA", "").split()
import csv
ids = [r["id"] for r in csv.DictReader(open(D / "manifest.csv")) if r["split"] == "train"]
reader = SampleReader(D / "cache")


def params(steps, gda):
    return load_params("params.yaml", S + [f"train.steps={steps}", f"train.gda_steps={gda}"])


PM, PG = (int(x) for x in os.environ.get("PROBE", "100,25").split(","))
p0 = params(PM, PG)
ds = GarmentViewDataset(view_refs(D / "render", ids), reader, p0)
print(f"[dev] {len(ids)} garments, {len(ds)} views; {GPU}; setup {time.time()-T0:.1f}s", flush=True)
t = time.time()
if os.environ.get("SPS"):
    probe, sps = {}, float(os.environ["SPS"])
else:
    probe = train(p0, ds, RUN / "probe", live_dir=RUN / "probe/live")
    sps = probe["seconds_per_step"]
tp = time.time() - t
print(f"[dev] probe {PM}+{PG} steps at batch {BATCH}: {tp:.1f}s wall, {sps*1000:.1f} ms/step mean; losses {probe}", flush=True)
budget = DEADLINE - time.time() - 30.0
total = int(0.95 * budget / sps)
gda = total // 9
steps = total - gda
if os.environ.get("STEPS"):  # a fixed schedule: "steps,gda"
    steps, gda = (int(x) for x in os.environ["STEPS"].split(","))
print(f"[dev] budget {budget:.0f}s -> steps {steps} + gda {gda}", flush=True)
p = params(steps, gda)
t = time.time()
fin = train(p, ds, RUN / "run", live_dir=RUN / "run/live")
print(f"[dev] trained in {time.time()-t:.1f}s: {fin}", flush=True)
(OUT / "model").mkdir(parents=True, exist_ok=True)
for f in (RUN / "run/model").iterdir():
    shutil.copy(f, OUT / "model" / f.name)
shutil.copy(RUN / "run/live/metrics.jsonl", OUT / "train_metrics.jsonl")
json.dump({"final": fin, "probe": probe, "probe_wall_s": tp, "steps": steps, "gda_steps": gda,
           "batch_size": BATCH, "lr": LR, "overrides": S, "device": GPU,
           "torch": torch.__version__}, open(OUT / "run.json", "w"), indent=1)
print(f"[dev] done at {time.time()-T0:.0f}s", flush=True)
