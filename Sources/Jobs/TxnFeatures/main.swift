// txn-features: card features for fraud scoring (docs/features.md). `txn-features --help` lists the flags.
import FeatureJobs

runFeatureJob("txn-features", topics: { [$0.txnTopic, $0.deviceTopic] }, build: buildTxnFeatures)
