"""transformers' side of bench/run.sh: the same work as `anemllc run OUT --tokens 1..P
--decode N` on the source checkpoint, in fp32 on the CPU, load included.

Loads the checkpoint (float32), runs the P-token prompt through the model once, then N−1
greedy single-token steps with the KV cache (N tokens generated, as `run` does), and prints
wall time (load included), prompt and decode tokens/s, peak RSS and the generated tokens.
Usage: python bench/run_transformers.py CKPT PROMPT_TOKENS DECODE_STEPS
"""

import resource
import sys
import time

start = time.perf_counter()
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

imported = time.perf_counter()
ckpt, prompt_len, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
model.eval()
loaded = time.perf_counter()
ids = torch.tensor([list(range(1, prompt_len + 1))])
generated = []
with torch.inference_mode():
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    past = out.past_key_values
    token = int(out.logits[0, -1].argmax())
    generated.append(token)
    t1 = time.perf_counter()
    for _ in range(steps - 1):
        out = model(torch.tensor([[token]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = int(out.logits[0, -1].argmax())
        generated.append(token)
    t2 = time.perf_counter()
end = time.perf_counter()
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
decode_steps = max(steps - 1, 1)
print(
    f"transformers fp32 ({torch.get_num_threads()} threads): wall {end - start:.1f} s "
    f"(import {imported - start:.1f} s, model load {loaded - imported:.1f} s)"
)
print(f"transformers prompt {prompt_len} tokens in {t1 - t0:.2f} s: {prompt_len / (t1 - t0):.2f} tokens/s")
print(f"transformers decode {decode_steps} steps in {t2 - t1:.2f} s: {decode_steps / max(t2 - t1, 1e-9):.2f} tokens/s")
print(f"transformers peak RSS {rss_mb:.0f} MB")
print("transformers generated: " + ",".join(str(t) for t in generated))
