"""Writes the SDXL image-to-image, refiner and ensemble-of-experts references under
tests/data/reference/: diffusers' StableDiffusionXLImg2ImgPipeline on the fixtures' tiny-sdxl, on a
tiny refiner made here, and StableDiffusionXLPipeline(denoising_end) handing its latents to the
refiner (denoising_start), as diffusers' SDXL docs run the "ensemble of expert denoisers".

The tiny refiner: a UNet2DConditionModel shaped like SDXL's refiner (text_time added embedding of
five time ids: original size, crop, aesthetic score; context = text_encoder_2's hidden size),
seeded PyTorch init, saved by save_pretrained as tests/data/reference/tiny-sdxl-refiner/ (its
model_index.json and unet/ only); the pipeline's other components are the fixtures' tiny-sdxl
text_encoder_2, tokenizer_2, vae and scheduler (the tests assemble the folder the same way).

Case format: make_pipeline_references.py's (step_latents over every model evaluation, base and
refiner together for the ensemble; images; metadata `json` with the call arguments, timesteps and
versions). CPU, float32. Needs torch, diffusers, transformers, safetensors, numpy, PIL.

Usage: python make_sdxl_refiner_references.py [<shared/fixtures> [<out dir>]]
"""
import json
import os
import shutil
import sys
import tempfile

import diffusers
import numpy as np
import torch
import transformers
from diffusers import (EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       DPMSolverMultistepScheduler, HeunDiscreteScheduler,
                       StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")
out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "data", "reference")
BASE = os.path.join(fixtures, "models", "tiny-sdxl")
REFINER_REL = "tiny-sdxl-refiner"
PROMPT = "a photo of an astronaut riding a horse on mars"
VERSIONS = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}
SCHEDULERS = {c.__name__: c for c in (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
                                      DPMSolverMultistepScheduler, HeunDiscreteScheduler)}


def make_refiner_unet(te2_config):
    torch.manual_seed(1201)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
        attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2),
        cross_attention_dim=te2_config.hidden_size, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=5 * 8 + te2_config.projection_dim)
    # PyTorch's default init leaves a random network's output far from unit scale; shrink the
    # output convolution so that twenty steps of it stay in the VAE's range.
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.2)
    return unet.eval()


def save_refiner(base_pipe, unet, folder):
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=base_pipe.vae, text_encoder=None, text_encoder_2=base_pipe.text_encoder_2,
        tokenizer=None, tokenizer_2=base_pipe.tokenizer_2, unet=unet,
        scheduler=base_pipe.scheduler, requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False)
    with tempfile.TemporaryDirectory() as tmp:
        refiner.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(os.path.join(folder, "unet"))
        shutil.copy(os.path.join(tmp, "model_index.json"), folder)
        for f in ("config.json", "diffusion_pytorch_model.safetensors"):
            shutil.copy(os.path.join(tmp, "unet", f), os.path.join(folder, "unet"))
    refiner.set_progress_bar_config(disable=True)
    return refiner


class Recorder:
    """Every model evaluation's latents and timestep, over one or more pipeline calls."""

    def __init__(self):
        self.steps, self.timesteps = [], []

    def __call__(self, pipe, i, t, kw):
        self.steps.append(kw["latents"].detach().clone())
        self.timesteps.append(float(t))
        return kw

    def kwargs(self):
        return dict(callback_on_step_end=self, callback_on_step_end_tensor_inputs=["latents"])


def use_scheduler(pipe, name):
    pipe.scheduler = SCHEDULERS[name].from_config(pipe.scheduler.config)


def write_case(name, rec, images, meta, scheduler):
    config = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}
    config = json.loads(json.dumps(config, default=lambda v: list(v) if isinstance(v, tuple)
                                   else str(v)))
    meta = dict(meta, prompt=PROMPT, timesteps=rec.timesteps, scheduler_config=config,
                generator="tools/reference/" + os.path.basename(__file__), versions=VERSIONS)
    save_file({"step_latents": torch.stack(rec.steps).to(torch.float32).contiguous(),
               "images": torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)},
              os.path.join(out_dir, f"pipe-{name}.safetensors"), metadata={"json": json.dumps(meta)})
    for n, im in enumerate(images):
        Image.fromarray((im * 255).round().astype("uint8")).save(
            os.path.join(out_dir, f"{name}-{n}.png"))
    spread = float(images.std())
    assert spread > 0.02, (name, "a flat image tests nothing", spread)
    print("wrote", name, len(rec.steps), "evaluations, image std", round(spread, 4))


def main():
    init = Image.open(os.path.join(fixtures, "golden", "img2img-init.png")).convert("RGB")
    base = StableDiffusionXLPipeline.from_pretrained(BASE, dtype=torch.float32)
    base.set_progress_bar_config(disable=True)
    refiner = save_refiner(base, make_refiner_unet(base.text_encoder_2.config),
                           os.path.join(out_dir, REFINER_REL))
    base_img2img = StableDiffusionXLImg2ImgPipeline.from_pretrained(BASE, dtype=torch.float32)
    base_img2img.set_progress_bar_config(disable=True)

    # 1. The base model as StableDiffusionXLImg2ImgPipeline (six time ids: target size), two images
    #    per prompt with a distinct negative original size: the batch is [uncond x 2, cond x 2]
    #    with the time ids in the same order.
    use_scheduler(base_img2img, "EulerDiscreteScheduler")
    rec = Recorder()
    call = dict(num_inference_steps=10, strength=0.6, guidance_scale=5.0, negative_prompt="blurry",
                num_images_per_prompt=2, negative_original_size=(64, 96), seed=71)
    out = base_img2img(PROMPT, image=init, generator=torch.Generator().manual_seed(call["seed"]),
                       output_type="np", **{k: v for k, v in call.items() if k != "seed"},
                       **rec.kwargs())
    write_case("sdxl-img2img-euler", rec, out.images,
               dict(call, model="tiny-sdxl", model_root="fixtures", image="golden/img2img-init.png",
                    image_root="fixtures", scheduler="EulerDiscreteScheduler",
                    pipeline="StableDiffusionXLImg2ImgPipeline"), base_img2img.scheduler)

    # 2. The refiner alone on an image: text_encoder_2 only, five time ids with the aesthetic
    #    scores, and the empty negative prompt encoded (force_zeros_for_empty_prompt is false).
    use_scheduler(refiner, "DPMSolverMultistepScheduler")
    rec = Recorder()
    call = dict(num_inference_steps=12, strength=0.5, guidance_scale=6.0, aesthetic_score=7.0,
                negative_aesthetic_score=2.0, seed=72)
    out = refiner(PROMPT, image=init, generator=torch.Generator().manual_seed(call["seed"]),
                  output_type="np", **{k: v for k, v in call.items() if k != "seed"},
                  **rec.kwargs())
    write_case("sdxl-refiner-dpmpp", rec, out.images,
               dict(call, model=REFINER_REL, model_root="reference", image="golden/img2img-init.png",
                    image_root="fixtures", scheduler="DPMSolverMultistepScheduler",
                    pipeline="StableDiffusionXLImg2ImgPipeline"), refiner.scheduler)

    # 3. Ensembles: the base denoises the first high_noise_frac of the schedule and hands its
    #    latents to the refiner, which continues from there (no new noise); one generator runs
    #    through both calls (ancestral and second-order schedulers both).
    for name, scheduler, steps, frac, seed in (("sdxl-ensemble-eulera", "EulerAncestralDiscreteScheduler", 10, 0.8, 73),
                                               ("sdxl-ensemble-heun", "HeunDiscreteScheduler", 6, 0.7, 74)):
        use_scheduler(base, scheduler)
        use_scheduler(refiner, scheduler)
        rec = Recorder()
        g = torch.Generator().manual_seed(seed)
        latents = base(PROMPT, num_inference_steps=steps, denoising_end=frac, guidance_scale=5.0,
                       height=128, width=128, generator=g, output_type="latent",
                       **rec.kwargs()).images
        base_evaluations = len(rec.steps)
        out = refiner(PROMPT, image=latents, num_inference_steps=steps, denoising_start=frac,
                      guidance_scale=5.0, generator=g, output_type="np", **rec.kwargs())
        write_case(name, rec, out.images,
                   dict(model="tiny-sdxl", model_root="fixtures", refiner=REFINER_REL,
                        refiner_root="reference", num_inference_steps=steps, guidance_scale=5.0,
                        height=128, width=128, high_noise_frac=frac, seed=seed,
                        base_evaluations=base_evaluations, scheduler=scheduler,
                        pipeline="StableDiffusionXLPipeline(denoising_end) + "
                                 "StableDiffusionXLImg2ImgPipeline(denoising_start)"),
                   refiner.scheduler)


if __name__ == "__main__":
    main()
