"""Kafka-API broker helpers for any broker (Tansu, Redpanda, Kafka).

``admin``: client configs, topic creation, offsets and lag. The local Tansu launcher is `devstack.broker`.
"""
