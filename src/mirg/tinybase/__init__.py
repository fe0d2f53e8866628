"""The embedded base: how `mirg model pretrain-tiny` teaches a tiny model to see and localise (a dense vision stage,
then a perception curriculum of ordinary `mirg` commands), and the model card it writes.
"""
