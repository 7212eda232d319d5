"""The shape of the two-tower retrieval model: what its towers read and how wide they are.

Part of the model contract: an export records this config in its manifest
(``model_config``), and every reader of the SavedModel (the recommendation service, the
stream worker's item embedder) rebuilds the towers' input specs from it
(:mod:`recsys.model_contract.feature_spec`). Every value is checked on construction; a bad one
raises :class:`~recsys.errors.ConfigError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from recsys.config import (
    Check,
    Config,
    boolean,
    finite_non_negative_number,
    in_range,
    non_negative_int,
    optional,
    positive_int,
    positive_number,
    setting,
    text,
    tuple_of,
)
from recsys.errors import ConfigError

USER_NUMERIC_FEATURES = (
    "user_engagements_7d", "user_engagements_30d", "user_lifetime_engagements",
    "user_mean_rating_30d", "user_ctr_30d", "user_avg_watch_time_s_30d",
    "user_sessions_per_day_7d", "user_days_since_last_active",
)
USER_CATEGORICAL_FEATURES = (
    "user_country", "user_language", "user_device", "user_age_bucket", "user_top_language_30d",
)
CONTEXT_CATEGORICAL_FEATURES = ("device", "country", "language")

feature_names = tuple_of(text, what="a list of feature names")


@dataclass(frozen=True)
class RetrievalModelConfig(Config):
    """Shape of the two towers.

    Attributes:
        embedding_dim: size of the (L2-normalised) query and candidate embeddings.
        id_embedding_dim: size of the user, item and history id embeddings.
        feature_embedding_dim: size of category, tag, language and context embeddings.
        hidden_units: dense layers of each tower before the output projection.
        history_length: how many recent items the query tower reads (most recent first).
        recency_decay: weight of the i-th most recent item in the recency pooling is
            ``recency_decay ** i``; the tower also takes the plain mean.
        max_tags: tags per item beyond this are ignored.
        user_numeric_features, user_categorical_features: Feast user features the query tower
            reads (missing values are allowed and learned as such).
        temperature: logits are cosine similarities divided by this.
        id_dropout: share of training examples whose user id and item id are replaced by the
            out-of-vocabulary id, so unseen users and items get trained embeddings.
        logq_correction: strength of the sampling-bias correction: each candidate's logit
            minus ``logq_correction`` times log Q, Q its inclusion probability in the batch;
            1 = the unbiased estimate of the full softmax, 0 = none, above 1 = popular items
            ranked higher than that estimate (a popularity prior: each unit above 1 adds
            log(share of positives) to an item's trained score, relative to the others).
        num_random_negatives: extra uniformly sampled catalogue items per batch, added to the
            in-batch negatives (mixed negative sampling); 0 = in-batch only.
        num_hard_negatives: keep only the hardest negatives per query in the loss (None = all).
        mask_user_positives: each query's negatives leave out every item its user has a
            training positive for (other than the example's own): such an item is one the
            user likes, not a negative (the others' positives in the batch, the uniform draws
            and the mined ones alike). Training on encoded inputs only (as ``train_retrieval``
            does).
        num_index_negatives: extra negatives per batch mined from the model's own index of the
            catalogue (its candidate vectors, refreshed at the start of every epoch): each of
            the batch's first ``num_index_negatives`` queries adds one item drawn from its top
            ``index_negative_depth`` there (an exact search: for catalogues of up to some
            hundred thousand items); 0 = none.
        index_negative_depth: how deep in a query's results its mined negative is drawn.
        sequence_blocks: 0 = the recent items are pooled only (mean and recency mean); n > 0
            adds a causal transformer of n blocks over them (SASRec-style, read at the most
            recent item: it sees their order and their age at the request), beside the pools.
        sequence_dim, sequence_heads, sequence_dropout: that transformer's width, heads and
            dropout (its feed-forward is twice as wide).
        ensemble_members: n > 1: each tower is n independently initialised members (the
            same inputs and shape), trained side by side, each on its own loss over the same
            batches; the tower's output is theirs side by side, scaled to unit length
            (n x ``embedding_dim`` wide), so a score is the members' mean cosine: a seed
            ensemble that one index serves. Each member adds its own towers and loss to
            every step (3 members: 2.1 times one model's epoch time on ml-latest-small).
        member_temperatures: one softmax temperature per ensemble member (as many as
            ``ensemble_members``), each member's loss at its own: a sharp member (0.05) for
            the top of the list beside a soft one (0.15) for its depth. Empty (the
            default): every member at ``temperature``. Training only: the served score is
            still the members' mean cosine.
        user_id_embedding: the query tower has a trained row per user id (True); False: it
            reads only the user's recent history, context and Feast features, so every
            user is encoded as a new one would be, and a user's query follows their recent
            history as soon as it changes (a row holds the tastes of the user's whole
            training history). The ``user_id`` input stays in the signatures.
    """

    embedding_dim: int = setting(64, positive_int)
    id_embedding_dim: int = setting(64, positive_int)
    feature_embedding_dim: int = setting(16, positive_int)
    hidden_units: tuple[int, ...] = setting((256,), tuple_of(positive_int))
    history_length: int = setting(50, positive_int)
    recency_decay: float = setting(0.9, in_range(0.0, 1.0, low_open=True))
    max_tags: int = setting(10, positive_int)
    user_numeric_features: tuple[str, ...] = setting(USER_NUMERIC_FEATURES, feature_names)
    user_categorical_features: tuple[str, ...] = setting(USER_CATEGORICAL_FEATURES,
                                                         feature_names)
    temperature: float = setting(0.05, positive_number)
    id_dropout: float = setting(0.05, in_range(0.0, 1.0, high_open=True))
    logq_correction: float = setting(1.0, finite_non_negative_number)
    num_random_negatives: int = setting(0, non_negative_int)
    num_hard_negatives: int | None = setting(None, optional(positive_int))
    mask_user_positives: bool = setting(False, boolean)
    num_index_negatives: int = setting(0, non_negative_int)
    index_negative_depth: int = setting(100, positive_int)
    ensemble_members: int = setting(1, positive_int)
    member_temperatures: tuple[float, ...] = setting(
        (), tuple_of(positive_number, what="a list of numbers > 0"))
    user_id_embedding: bool = setting(True, boolean)
    sequence_blocks: int = setting(0, non_negative_int)
    sequence_dim: int = setting(64, positive_int)
    sequence_heads: int = setting(2, positive_int)
    sequence_dropout: float = setting(0.1, in_range(0.0, 1.0, high_open=True))

    @property
    def output_dim(self) -> int:
        """Width of the towers' output: ``embedding_dim`` per ensemble member."""
        return self.embedding_dim * self.ensemble_members

    @property
    def temperatures(self) -> tuple[float, ...]:
        """Each ensemble member's softmax temperature, in member order."""
        return self.member_temperatures or (self.temperature,) * self.ensemble_members

    def check_together(self) -> None:
        from recsys.features.tables import USER_FEATURES, USER_PROFILE

        if self.member_temperatures and len(self.member_temperatures) != self.ensemble_members:
            raise ConfigError(
                f"model.member_temperatures: {len(self.member_temperatures)} temperatures "
                f"{list(self.member_temperatures)} for {self.ensemble_members} ensemble "
                "member(s); give one per member (ensemble_members), or leave it out")

        known = set(USER_FEATURES.feature_names) | set(USER_PROFILE.feature_names)
        feature = Check(lambda name: name in known,
                        f"one of the Feast user features ({', '.join(sorted(known))})")
        for name in (*self.user_numeric_features, *self.user_categorical_features):
            feature("user feature", name)


def model_config_of(manifest: dict) -> RetrievalModelConfig:
    """The model config an export's manifest records; ConfigError if it is not one."""
    if "model_config" not in manifest:
        raise ConfigError(f"manifest of {manifest.get('artifact')!r} version "
                          f"{manifest.get('version')} has no model_config")
    return RetrievalModelConfig.from_dict(manifest["model_config"], "model")


__all__ = ["RetrievalModelConfig", "model_config_of", "USER_NUMERIC_FEATURES",
           "USER_CATEGORICAL_FEATURES", "CONTEXT_CATEGORICAL_FEATURES"]
