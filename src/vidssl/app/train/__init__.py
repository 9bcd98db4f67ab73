"""The training engine of ``vidssl pretrain``.

- ``loop``: the ``Trainer`` (DDP, AMP, accumulation, clipping, checkpoints, exact resume);
- ``build``: config -> backbone, method, dataset, Trainer (the library registries);
- ``optim`` / ``schedule``: SGD, Adam, AdamW, LARS with norm/bias exclusion; warmup + cosine;
- ``checkpoint``: atomic writes, ``weights_only`` loads, RNG capture / restore;
- ``data``: resumable distributed sampler, the per-epoch loader and the whole-run loader;
- ``precision``: bf16 / fp16 autocast, channels_last_3d, the bf16 Conv3d guard;
- ``sync_bn``: ``model.sync_bn`` on GPU and CPU;
- ``logging``: tqdm bar, TensorBoard, metrics.jsonl.
"""
