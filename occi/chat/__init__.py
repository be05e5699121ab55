"""Chat models: distillation from a teacher (`occi distill`), generation with s1 budget forcing (`occi generate`)."""
