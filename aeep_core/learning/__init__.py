"""The learner and what it trains: the pairwise network, its training, the active learner (the one owner of L, U, the model and the round) and the pipelined trainer."""
