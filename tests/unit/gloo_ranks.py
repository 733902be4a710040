"""Run a function on N real gloo ranks (spawned processes on this machine) for the data-parallel tests.

``spawn_ranks(worker, out_dir, *args)`` opens the process group, calls ``worker(rank, *args)`` on
every rank and closes the group after a barrier, so no rank tears its sockets down while another is
still reading from them. The ranks talk over loopback: gloo otherwise uses the address the hostname
resolves to, which a sandboxed CI machine may be able to bind but not to reach. Each rank's stderr
goes to a file; when a rank dies, the raised error carries the end of every rank's stderr (a killed
rank leaves no Python traceback, and the test log shows only the error line). A rank killed by a
signal (a transport abort) is retried once; an exception raised by ``worker`` is never retried.
"""

import datetime
import os
import socket
import traceback

import pytest
import torch
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(seconds=120)


def _rank_main(rank, worker, world, init_file, log_dir, args):
    log = open(os.path.join(log_dir, f"stderr{rank}.txt"), "w")  # noqa: SIM115 - fd 2 writes into it until exit
    os.dup2(log.fileno(), 2)
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=TIMEOUT
    )
    try:
        worker(rank, *args)
        torch.distributed.barrier()
    except BaseException:
        traceback.print_exc()  # the other rank may fail first (on the broken connection) and be reported
        raise
    finally:
        torch.distributed.destroy_process_group()


def _stderr_tails(log_dir, world, chars=1500):
    tails = []
    for rank in range(world):
        path = os.path.join(log_dir, f"stderr{rank}.txt")
        text = open(path).read()[-chars:] if os.path.exists(path) else "(no stderr file)"
        tails.append(f"--- rank {rank} stderr ---\n{text.strip()}")
    return "\n".join(tails)


def spawn_ranks(worker, out_dir, *args, world=2, attempts=2):
    """Call ``worker(rank, *args)`` on ``world`` gloo ranks; raise with their stderr if one fails.

    ``worker`` must be a module-level function (the spawned processes import it by name); it
    writes its results under ``out_dir`` for the test to read.
    """
    with pytest.MonkeyPatch.context() as patch:
        if "GLOO_SOCKET_IFNAME" not in os.environ and "lo" in {name for _, name in socket.if_nameindex()}:
            patch.setenv("GLOO_SOCKET_IFNAME", "lo")
        for attempt in range(1, attempts + 1):
            run_dir = os.path.join(out_dir, f"attempt{attempt}")
            os.makedirs(run_dir)
            try:
                mp.spawn(_rank_main, args=(worker, world, os.path.join(run_dir, "init"), run_dir, args),
                         nprocs=world, join=True)
                return
            except mp.ProcessExitedException as error:
                if error.signal_name is None or attempt == attempts:
                    raise RuntimeError(f"{error} (attempt {attempt})\n{_stderr_tails(run_dir, world)}") from error
            except mp.ProcessRaisedException as error:
                raise RuntimeError(f"{error}\n{_stderr_tails(run_dir, world)}") from error
