// click-features: session features for personalisation (docs/features.md). `click-features --help` lists the flags.
import FeatureJobs

runFeatureJob("click-features", topics: { [$0.clickTopic] }, build: buildClickFeatures)
