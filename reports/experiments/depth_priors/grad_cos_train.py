"""grad cos (the evaluate stage's gradient_cosine) on training garments vs test garments.

Eight garments of each split (every k-th in manifest order), their yaw-0 view (a training
view for the training garments), one model: python
reports/experiments/depth_priors/grad_cos_train.py MODEL_DIR [DATA]. The README's
0.088 / 0.065 came from runs/sil0/model (silhouette_s0) on runs/base/data.
"""
import numpy as np, torch, sys
from pathlib import Path
from anchorudf.config import load_params
from anchorudf.data.manifest import read_manifest
from anchorudf.evaluate.stage import _ground_truth, _test_view, gradient_cosine
from anchorudf.data.images import load_rgb_mask, image_tensors
from anchorudf.models.checkpoint import load_model
torch.set_num_threads(1)
data = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/base/data")
model, _ = load_model(Path(sys.argv[1]))
model.eval()
df = read_manifest(data / "garments")
for split in ["train", "test"]:
    rows = df[df.split == split].iloc[::max(1, (df.split == split).sum() // 8)][:8]
    vals = []
    for r in rows.itertuples():
        gt = _ground_truth(r, data / "garments", data / "cache")
        v = _test_view(data / "render", r.id, 0.0)
        rgb, mask = load_rgb_mask(Path(v.image), Path(v.mask))
        vals.append(gradient_cosine(model, image_tensors(rgb, mask)[0], gt, np.asarray(v.calib), "cpu", 0))
    print(split, np.round(vals, 3), np.mean(vals))
