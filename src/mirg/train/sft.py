"""Stage 1: supervised fine-tuning on reasoning trajectories with TRL's ``SFTTrainer``.

Records are prompt-completion conversations (``sft.jsonl``); TRL's vision collator builds each batch
from the images at that moment and masks the prompt, so the loss is on the assistant turn only.

On a CPU the loss is computed on the completion positions alone (:class:`CompletionLossSFTTrainer`): TRL's
fused LM head scores only those positions where Triton runs (GPUs) and every position elsewhere, prompt and
image tokens included, which is about a quarter of a tiny model's step on a CPU.

``--decision-weight W`` weights the tokens of the sentence that names the target (after ``--decision-prefix``,
the chain's ``The target is the``, up to its full stop: the label and the image, where the cross-image decision is
written) W times in that loss, on every device; the sum stays divided by the completion's token count.

``--train-sampling-strategy group_by_length`` (transformers' length-grouped sampler) batches records of
similar length, so less of each batch is padding: records carry no token ids before the collator runs, so
:func:`add_length_column` gives each the length the run counted (its chat-templated text with every image's
tokens, :mod:`mirg.train.budget`) unless the data has a ``length`` column of its own.
"""

from __future__ import annotations

from pathlib import Path

from mirg.train.common import (
    build_checked,
    dry_run_report,
    load_policy,
    lora_config,
    prepare_run,
    print_dry_run,
    train_and_save,
)
from mirg.train.config import SFTArguments


def check_sft_options(args: SFTArguments) -> None:
    """Force what multi-image prompt-completion training needs: loss on the completion, no packing."""
    from mirg.errors import MirgError

    if args.completion_only_loss is False:
        raise MirgError("completion_only_loss: false would train on the prompt too; SFT trains the assistant turn only")
    if args.packing:
        raise MirgError("packing is not supported for image data; set packing: false")
    if args.max_length is not None and args.max_length < 64:
        raise MirgError(f"max_length {args.max_length} is too short for image prompts (image tokens must fit)")
    if args.decision_weight != 1 and (args.use_lora or args.label_smoothing_factor or args.loss_type != "nll"):
        raise MirgError("--decision-weight weights the plain next-token loss of all weights; it does not combine "
                        "with --use-lora, --label-smoothing-factor or another --loss-type")


def decision_token_ids(tokenizer, prefix: str) -> tuple[list[list[int]], set[int]]:
    """How ``prefix`` is tokenized after a space and at the start of a text, and every token holding a full stop
    (where a decision sentence ends)."""
    forms = {tuple(tokenizer.encode(text, add_special_tokens=False)) for text in (" " + prefix, prefix)}
    stops = {i for token, i in tokenizer.get_vocab().items() if "." in tokenizer.convert_tokens_to_string([token])}
    return [list(form) for form in sorted(forms) if form], stops


def decision_mask(labels, prefixes: list[list[int]], stops: set[int]):
    """``labels``-shaped booleans: the tokens after each occurrence of a prefix, up to and including the next
    token that holds a full stop (or the end of the row).

    >>> import torch
    >>> decision_mask(torch.tensor([[5, 1, 2, 7, 8, 9, 4]]), [[1, 2]], {9}).int().tolist()
    [[0, 0, 0, 1, 1, 1, 0]]
    """
    import torch

    rows = labels.tolist()  # one transfer from the device, then plain lists
    mask = [[False] * len(row) for row in rows]
    for prefix in prefixes:
        width = len(prefix)
        for r, row in enumerate(rows):
            for start in range(len(row) - width + 1):
                if row[start] != prefix[0] or row[start:start + width] != prefix:
                    continue
                for end in range(start + width, len(row)):
                    mask[r][end] = True
                    if row[end] in stops:
                        break
    return torch.tensor(mask, dtype=torch.bool, device=labels.device)


def check_decision_prefix(args: SFTArguments, dataset) -> None:
    """With a decision weight, the prefix must open a sentence in the completions (else the weight does nothing)."""
    from mirg.errors import MirgError
    from mirg.train.data import message_texts

    if args.decision_weight == 1:
        return
    completions = dataset.with_format(None)["completion"]
    if not any(args.decision_prefix in text for turns in completions for text in message_texts(turns)):
        raise MirgError(f"--decision-weight {args.decision_weight:g}: no completion holds --decision-prefix "
                        f"{args.decision_prefix!r}, so the weight would change nothing")


LENGTH_SAMPLERS = ("group_by_length", "batch_rebalance")


def add_length_column(dataset, lengths: list[int], column: str = "length"):
    """``dataset`` with ``column``: each record's tokens as the collator will make them (``lengths``, the run's count:
    :func:`mirg.train.budget.count_tokens`, every image at its own size). Kept as it is if it has ``column`` (which
    must then hold a non-negative whole number for every record)."""
    from mirg.errors import MirgError

    raw = dataset.with_format(None)
    if column in dataset.column_names:
        bad = next((i for i, v in enumerate(raw[column]) if not isinstance(v, int) or isinstance(v, bool) or v < 0), None)
        if bad is not None:
            raise MirgError(f"record {bad + 1}: {column!r} must be a non-negative whole number (the length to group "
                            f"by), got {raw[column][bad]!r}")
        return dataset
    return dataset.add_column(column, list(lengths))


def completion_loss_trainer_class():
    """TRL's SFTTrainer with the loss on the completion positions only, where TRL's fused head scores them all."""
    import torch
    import torch.nn.functional as F
    from accelerate.utils import is_peft_model
    from trl import SFTTrainer

    class CompletionLossSFTTrainer(SFTTrainer):
        """SFTTrainer whose loss, on a single CPU process, projects only the positions that have a label.

        The same loss as TRL's (summed negative log-likelihood of the completion tokens over their count) and the
        same logged metrics (entropy, mean token accuracy, tokens seen); every other case (GPUs, several processes,
        PEFT, label smoothing, another loss type) is TRL's own path.
        """

        def _completion_only(self, model, inputs) -> bool:
            """This loss where it is the faster path (one CPU process) or a decision weight asks for it."""
            if not (model.training and "labels" in inputs and self.compute_loss_func is None
                    and self.label_smoother is None and self.args.loss_type == "nll" and not self.aux_loss_enabled
                    and not is_peft_model(self.accelerator.unwrap_model(model))):
                return False
            return self.args.decision_weight != 1 or (self.accelerator.num_processes == 1
                                                     and inputs["labels"].device.type == "cpu")

        def _decision_ids(self):
            if not hasattr(self, "_decision_tokens"):
                tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
                self._decision_tokens = decision_token_ids(tokenizer, self.args.decision_prefix)
            return self._decision_tokens

        def _set_signature_columns_if_needed(self):
            """Keep the length column a length-grouped sampler reads (TRL keeps only the conversation's)."""
            super()._set_signature_columns_if_needed()
            length = self.args.length_column_name
            if self.args.train_sampling_strategy in LENGTH_SAMPLERS and length not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, length]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs or not self._completion_only(model, inputs):
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            core = self.accelerator.unwrap_model(model)
            kwargs = {k: v for k, v in inputs.items() if k != "labels"}
            hidden = core.base_model(**kwargs, use_cache=False).last_hidden_state[:, :-1]
            labels = inputs["labels"][:, 1:]
            mask = labels != -100
            logits = core.get_output_embeddings()(hidden[mask]).float()
            targets = labels[mask]
            count = torch.as_tensor(mask.sum() if num_items_in_batch is None else num_items_in_batch).clamp(min=1)
            nll = F.cross_entropy(logits, targets, reduction="none")
            if self.args.decision_weight != 1:
                decision = decision_mask(labels, *self._decision_ids())[mask]
                nll = torch.where(decision, nll * self.args.decision_weight, nll)
                self._metrics["train"]["decision_tokens"].append(float(decision.sum()))
            loss = nll.sum() / count.to(logits.device)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # the count is every process's (as transformers does)
            self._log_token_metrics(logits.detach(), targets, inputs)
            return loss

        def _log_token_metrics(self, logits, targets, inputs) -> None:
            metrics = self._metrics["train"]
            if targets.numel():
                logp = logits.log_softmax(-1)
                metrics["entropy"].append(float(-(logp.exp() * logp).sum(-1).mean()))
                metrics["mean_token_accuracy"].append(float((logits.argmax(-1) == targets).float().mean()))
            if "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            metrics["num_tokens"] = [self._total_train_tokens]

    return CompletionLossSFTTrainer


def build_sft_trainer(args: SFTArguments, setup):
    """TRL's SFTTrainer (with the loss on the completion positions only, on a CPU) for the prepared run, with the
    processor passed explicitly."""
    return completion_loss_trainer_class()(
        model=load_policy(args, setup),
        args=args,
        train_dataset=setup.dataset,
        processing_class=setup.processor,
        peft_config=lora_config(args, setup.adapter),
    )


def run_sft(args: SFTArguments) -> Path | dict:
    """Check, then (unless ``dry_run``) train and save; returns the output folder or the dry-run report."""
    check_sft_options(args)
    setup = prepare_run(args, "sft")
    if args.train_sampling_strategy in LENGTH_SAMPLERS:
        from mirg.errors import MirgError

        try:
            setup.dataset = add_length_column(setup.dataset, [s.total for s in setup.tokens], args.length_column_name)
        except MirgError as exc:
            raise MirgError(f"{setup.data_file}: {exc}") from None
    check_decision_prefix(args, setup.dataset)
    if args.dry_run:
        report = dry_run_report(args, setup)
        print_dry_run(report)
        return report
    trainer = build_checked("sft", lambda: build_sft_trainer(args, setup))
    return train_and_save(trainer, setup, args)
