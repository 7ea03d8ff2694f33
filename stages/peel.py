"""Peeling (issue 26, `layers.count` > 1): layers 2..count of a sample, each cut from the previous background.

Layer 1 is the paper's (stages/layers.py, stages/inpaint.py). For k = 2..count the layer comes from
B_{k-1}: either an object queued by an earlier saliency pass (a separate component of its mask, see
`layers.split_components`: most saliency first), or, when none is queued, a new saliency pass on B_{k-1}
through the same saliency stage and no-object gate; its mask is checked like layer 1's and split the same
way. Then F_k = B_{k-1} where m_k > t, m~_k its dilation, and B_k = the inpaint stage on (B_{k-1}, m~_k)
with B_{k-1} pasted back outside m~_k, so per layer B_{k-1} = m_k F_k + (1 - m_k) B_k as for layer 1.

Peeling stops early, keeping the layers done, when a pass finds no object, a mask fails the area checks,
more than `layers.max_inpainted_share` of a new pass's mask lies in pixels an earlier layer's inpainting
made (`peel:mostly_inpainted`: the pass found the inpainting's ghost of a layer, not the photo), or a model
fails; the reason goes into the json's `peel` list ({"layer": k, "stopped": reason}), and the
json's `depth` counts the layers kept. Only layer 1 can reject a sample. Each pass is a view of the
sample keyed `KEY/l{k}`, so its seeds differ per layer and are the same on every rerun.

The stage calls the saliency and inpaint stages of its own pipeline (`attach`: the models are loaded
once), under their backends' device locks (`stages.base.device_lock`); where those stages run elsewhere
(a CPU saliency backend runs as Ray tasks, outside the device actors) it builds its own.
"""
from __future__ import annotations

import logging

import numpy as np

from l2i_pipeline.core.config import Config
from l2i_pipeline.core.sample import Sample
from l2i_pipeline.formats.decode import Layer
from stages.base import Resources, Stage, device_lock
from stages.inpaint import InpaintStage
from stages.layers import check_area, count_components, dilated_mask, foreground, split_for_peeling
from stages.matting import MattingError, soft_alpha
from stages.saliency import SaliencyStage

log = logging.getLogger(__name__)


def inpainted_share(s: Sample, binary: np.ndarray, k: int) -> float:
    """The share of a mask found on B_{k-1} that lies in pixels an earlier layer's inpainting made (m~_1..k-1)."""
    made = s.inpaint_mask > 0
    for p in s.peels[:k - 2]:
        made |= p.inpaint_mask > 0
    return float((binary & made).sum() / max(int(binary.sum()), 1))


class PeelStage(Stage):
    name = "peel"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.saliency, self.inpaint = SaliencyStage(cfg), InpaintStage(cfg)  # until attach() finds the pipeline's
        self._own = {"saliency", "inpaint"}  # the ones it built itself (names: ids do not survive a pickle)
        models = [st.resources for st in (self.saliency, self.inpaint) if st.resources.num_actors != 0]
        # in the device actors beside the models it calls when one of them is there; it holds no GPU itself
        actors = None if models else 0
        self.resources = Resources(cpus=1, gpus=0.0, batch_size=self.inpaint.resources.batch_size,
                                   num_actors=next((r.num_actors for r in models if r.num_actors), actors))

    def attach(self, stages: list[Stage]) -> None:
        """Use the pipeline's own saliency and inpaint stages (and their loaded models) where present."""
        for st in stages:
            if isinstance(st, SaliencyStage):
                self.saliency = st
                self._own.discard("saliency")
            elif isinstance(st, InpaintStage):
                self.inpaint = st
                self._own.discard("inpaint")

    def setup(self) -> None:
        for st in (getattr(self, name) for name in sorted(self._own)):
            if not st.ready:
                st.backend.check()
                st.start()

    def _call(self, stage: Stage, views: list[Sample]) -> list[Sample]:
        with device_lock(stage):
            return stage.run_all(views)

    def process(self, samples: list[Sample]) -> list[Sample]:
        live = [s for s in samples if s.ok]
        log_of: dict[str, list[dict]] = {s.key: [] for s in live}
        active = list(live)
        for k in range(2, self.cfg.layers.count + 1):
            if not active:
                break
            active = self._guarded_peel(active, k, log_of)
        for s in live:
            s.peels = [p for p in s.peels if p.done]
            for p in s.peels:
                p.meta.pop("from_split", None)
            s.meta["depth"] = 1 + len(s.peels)
            s.meta["peel"] = log_of[s.key]
        return samples

    def _guarded_peel(self, active: list[Sample], k: int, log_of: dict[str, list[dict]]) -> list[Sample]:
        """_peel on the batch; if it raises, on one sample at a time from the same state, so an unexpected
        error ends that sample's peeling only (with the reason), never the job."""
        state = {s.key: (list(s.peels), len(log_of[s.key])) for s in active}
        try:
            return self._peel(active, k, log_of)
        except Exception as e:  # noqa: BLE001 - retried one by one below
            log.warning("peel: layer %d of a batch of %d failed (%s); one by one", k, len(active), e)
        done = []
        for s in active:
            s.peels, n = list(state[s.key][0]), state[s.key][1]
            del log_of[s.key][n:]
            try:
                done += self._peel([s], k, log_of)
            except Exception as e:  # noqa: BLE001 - this sample's peeling ends here, its layers done stay
                s.peels = list(state[s.key][0][:k - 2])
                del log_of[s.key][n:]
                log_of[s.key].append({"layer": k, "stopped": f"peel:error:{type(e).__name__}"})
        return done

    def _peel(self, active: list[Sample], k: int, log_of: dict[str, list[dict]]) -> list[Sample]:
        """Layer k of every active sample; returns the samples that got it."""
        cfg = self.cfg.layers

        def stop(s: Sample, reason: str) -> None:
            del s.peels[k - 2:]  # the layer being made and any queued behind it
            log_of[s.key].append({"layer": k, "stopped": reason})

        def image_of(s: Sample):
            return s.bg if k == 2 else s.peels[k - 3].bg

        need = [s for s in active if len(s.peels) < k - 1]  # nothing queued: a new saliency pass on B_{k-1}
        if need:
            views = [Sample(f"{s.key}/l{k}", s.unit, image=image_of(s)) for s in need]
            views = self._run(self.saliency, views)
            for s, v in zip(need, views):
                reason = v.reason if not v.ok else check_area(float((v.mask > cfg.threshold).mean()), cfg)
                if not reason and inpainted_share(s, v.mask > cfg.threshold, k) > cfg.max_inpainted_share:
                    reason = "peel:mostly_inpainted"  # the pass found what the inpainting made, not the photo
                if reason:
                    stop(s, reason)
                    continue
                first, queued = split_for_peeling(v.mask, cfg, cfg.count - k, image_of(s))
                s.peels += [Layer(mask=first, meta={"components": count_components(v.mask > cfg.threshold)}),
                            *queued]
        todo = [s for s in active if len(s.peels) >= k - 1]
        made = []
        for s in todo:
            try:
                layer, image = s.peels[k - 2], image_of(s)
                layer.fg = foreground(image, layer.mask, cfg.threshold)
                layer.inpaint_mask = dilated_mask(layer.mask, cfg.threshold, cfg.dilate_kernel, cfg.dilate_iterations)
                if cfg.alpha == "matting":  # this layer's soft alpha, as layer 1's (stages/layers.py)
                    layer.alpha, layer.fg_rgba = soft_alpha(image, layer.mask, cfg)
                made.append(s)
            except MattingError as e:  # this layer stops the peeling; the layers done stay
                log.warning("peel: matting layer %d of %s failed: %s", k, s.key, e)
                stop(s, "peel:matting_failed")
            except Exception as e:  # noqa: BLE001 - this layer fails, the layers done stay
                log.warning("peel: layer %d of %s failed: %s: %s", k, s.key, type(e).__name__, e)
                stop(s, f"peel:error:{type(e).__name__}")
        views = [Sample(f"{s.key}/l{k}", s.unit, image=image_of(s), inpaint_mask=s.peels[k - 2].inpaint_mask)
                 for s in made]
        views = self._run(self.inpaint, views)
        done = []
        for s, v in zip(made, views):
            if not v.ok:
                stop(s, v.reason)
                continue
            layer = s.peels[k - 2]
            layer.bg = v.bg
            source = "split" if layer.meta.pop("from_split", False) else "saliency"
            layer.meta = {"layer": k, "source": source, **layer.meta,
                          "mask_area": round(float((layer.mask > cfg.threshold).mean()), 6),
                          "inpaint_area": round(float((layer.inpaint_mask > 0).mean()), 6)}
            log_of[s.key].append(layer.meta)
            done.append(s)
        return done

    def _run(self, stage: Stage, views: list[Sample]) -> list[Sample]:
        """The views through a stage; an error of the stage itself stops these samples' peeling there."""
        if not views:
            return views
        try:
            return self._call(stage, views)
        except Exception as e:  # noqa: BLE001 - the layers done stay; the reason is recorded
            log.warning("peel: %s failed on %d views: %s: %s", stage.name, len(views), type(e).__name__, e)
            for v in views:
                v.reject(f"{stage.name}:error:{type(e).__name__}")
            return views
