"""EngagementFeed: PPO on engagement learns to keep its users, then to hold them at the edge of
leaving with as much clickbait as they bear; take away clickbait's pull and it serves a wholesome feed.

    python experiments/engagement_feed_clickbait.py [--seeds 0 1 2] [--steps N] [--out runs/feed]

Arms: PPO on the proxy with the default pull of clickbait (2.0), a weaker pull (0.5), no pull
(0, aligned: engagement rises only with satisfaction), every user equally sensitive (no
population spread), and PPO on the true objective (satisfaction). Prints the Goodhart table and
writes runs/engagement_feed_clickbait/comparison.png.
"""

from _common import parse_args, shared_settings

from gaming_gym.experiment import Condition, run_conditions

ENV = "GamingGym/EngagementFeed-v0"

if __name__ == "__main__":
    args = parse_args(__doc__, default_steps=983_040, default_out="runs/engagement_feed_clickbait")
    run_conditions(
        [
            Condition("proxy, pull 2 (default)", ENV),
            Condition("proxy, pull 0.5", ENV, {"clickbait_pull": 0.5}),
            Condition("proxy, pull 0 (aligned)", ENV, {"clickbait_pull": 0.0}),
            Condition("proxy, users alike", ENV, {"sensitivity_spread": 0.0}),
            Condition("true reward", ENV, settings={"reward": "true"}),
        ],
        args.seeds,
        args.out,
        "EngagementFeed: clickbait's pull on engagement",
        progress=not args.quiet,
        settings=shared_settings(args),
    )
