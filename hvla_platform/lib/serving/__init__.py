"""Serving checkpoints to robots over openpi's websocket protocol.

* :mod:`.wire` — openpi's msgpack-numpy encoding, decoded defensively;
* :mod:`.server` — the policy server (handshake metadata, observations in, action chunks out,
  error frames, ``/healthz``, API key, size and connection caps);
* :mod:`.inference_log` — the server's inference log (no frames unless sampling is switched on);
* :mod:`.allocator` — keeps a serving process's freed message buffers mapped (glibc ``mallopt``);
* :mod:`.checkpoint` — locate, authorize (rights) and describe a checkpoint for serving;
* :mod:`.client` — the robot-side client;
* :mod:`.safety` — emergency stop, action limits, robot safety log;
* :mod:`.prompts` — warnings for prompts outside the checkpoint's training tasks (served, not refused);
* :mod:`.plausibility` — bounds on states and action chunks from the checkpoint's norm stats and the
  robot model's joint limits;
* :mod:`.robot` — the robot-side control loop (shared by ``hvla deploy`` and ``eval_report``);
* :mod:`.loopback` — server + client + robot in one process (closed-loop evaluation).

No Dagster imports here (DESIGN.md: lib/ is plain Python).
"""
