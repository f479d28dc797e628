"""``sluicegate bench images-threads``: the variant syntax, the config it writes, the per-thread reading."""

from __future__ import annotations

import os
import threading

from sluicegate.bench.suites.images_threads import _config, _variant, loop_wakeups, thread_ticks
from sluicegate.config.loader import load_settings_text


def test_variant_spec_and_config() -> None:
    assert _variant("default:") == ("default", {})
    name, settings = _variant("big:malloc_mmap_threshold=4194304,stream_source_above=0")
    assert name == "big" and settings == {"malloc_mmap_threshold": "4194304", "stream_source_above": "0"}
    text = _config(8080, 1, settings)
    opt = load_settings_text(text, "bench.toml", {}).image_optimizer
    assert (opt.malloc_mmap_threshold, opt.stream_source_above, opt.workers) == (4194304, 0, 1)
    name, settings = _variant("e1:effort=1,splice_sources=false")
    opt = load_settings_text(_config(8080, 2, settings), "bench.toml", {}).image_optimizer
    assert opt.profile_sets["bench"].profiles["w800"].effort == 1 and opt.splice_sources is False
    assert settings == {"effort": "1", "splice_sources": "false"}  # the caller's settings are left as given
    name, settings = _variant("main:src=/tmp/main/src,stream_source_above=0")  # src: the code, not a setting
    text = _config(8080, 2, settings)
    assert "src" not in text and settings["src"] == "/tmp/main/src"
    assert load_settings_text(text, "bench.toml", {}).image_optimizer.stream_source_above == 0


def test_thread_ticks_sees_the_main_thread_and_others() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    t = threading.Thread(target=spin)
    t.start()
    try:
        deadline = 0
        while deadline < 200 and thread_ticks(os.getpid())["image"] == 0:
            threading.Event().wait(0.01)
            deadline += 1
        ticks = thread_ticks(os.getpid())
    finally:
        stop.set()
        t.join()
    assert set(ticks) <= {"loop", "image", "libvips"} and ticks["image"] > 0


def test_loop_wakeups_counts_the_main_thread_going_to_sleep() -> None:
    before = loop_wakeups(os.getpid())
    for _ in range(5):
        threading.Event().wait(0.005)  # the main thread sleeps and is woken: 5 voluntary switches at least
    assert loop_wakeups(os.getpid()) - before >= 5
    assert loop_wakeups(2**22 + 12345) == 0  # no such process: nothing counted, no error
