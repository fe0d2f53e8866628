"""The words a trajectory is written in and the files of a trajectories folder: one small vocabulary that the
trajectory builder, teacher mode, training, evaluation, the commands and the benchmarks share.

>>> CHAIN_TARGET.format(label="red star", k=2)
'The target is the red star in image 2.'
>>> set(LIST_DETAILS) < set(OBJECT_DETAILS) < set(DETAILS)
True
"""

from __future__ import annotations

#: How much a template trajectory writes before its answer (see `mirg data trajectories --help`).
DETAILS = ("answer", "list", "box-list", "mark-list", "chain", "brief", "full")
#: The details that list every object of every image before naming the target image.
LIST_DETAILS = ("list", "box-list", "mark-list", "chain")
#: The details whose text lists every image's objects: a sample without ``objects`` can't be written in them.
OBJECT_DETAILS = (*LIST_DETAILS, "full")
#: What ``mark-list`` and ``chain`` write between the target's label and its box.
TARGET_MARK = "(the target)"
#: What ``chain`` writes after the label of an object an outline marks.
OUTLINE_MARK = "outlined"
#: The sentence of ``chain`` that names the target (where the cross-image decision is written).
CHAIN_TARGET = "The target is the {label} in image {k}."
#: How the objects of an image are ordered in every list: by the box's centre, left to right, or by label.
ORDERS = ("left-to-right", "label")

#: A trajectories folder: the SFT conversations, the RL prompts and targets, and its card.
SFT_FILE, RL_FILE, README_FILE = "sft.jsonl", "rl.jsonl", "README.md"
#: The folder's record of the coordinate space and pixel limits its boxes are written in.
RECORD_FILE = "trajectories.json"
#: Teacher mode's reply cache and the replies it rejected.
CACHE_FILE, REJECTED_FILE = "teacher_cache.jsonl", "rejected.jsonl"
#: What a trajectories folder holds: a folder with other files and none of these is someone else's, whose README.md a
#: run would overwrite.
TRAJECTORY_FILES = (SFT_FILE, RL_FILE, CACHE_FILE, REJECTED_FILE)
#: IoU an answer's box must reach against the manifest's box for a trajectory to be kept.
MIN_IOU = 0.5
