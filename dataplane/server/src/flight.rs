//! Arrow Flight between roles: a pooled client and the `DoPut` exchange with
//! typed `app_metadata` ([`PutMetadata`] in, [`PutAck`] out).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{ClusterToken, SendToken};

use crate::proto::{PutAck, PutMetadata};

/// Largest Flight message either side accepts.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FlightClientError {
    #[error("bad writer address {address:?}: {source}")]
    Address {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("encoding batch for {address}: {source}")]
    Encode { address: String, source: FlightError },
    #[error("DoPut to {address}: {status}")]
    Rpc { address: String, status: tonic::Status },
    #[error("DoPut to {address}: the writer sent no acknowledgement")]
    NoAck { address: String },
    #[error("DoPut to {address}: undecodable acknowledgement: {source}")]
    BadAck {
        address: String,
        source: prost::DecodeError,
    },
}

impl FlightClientError {
    /// The gRPC code, when the writer answered.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            FlightClientError::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}

/// A Flight client to another role: every call carries the cluster token.
pub type FlightClient = FlightServiceClient<InterceptedService<Channel, SendToken>>;

/// One lazily connected, multiplexed channel per address; every call
/// carries the cluster token, when there is one.
#[derive(Debug, Clone, Default)]
pub struct FlightPool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    token: SendToken,
}

impl FlightPool {
    /// A pool whose calls present `token`.
    pub fn new(token: Option<ClusterToken>) -> Self {
        Self {
            channels: Arc::default(),
            token: SendToken::new(token),
        }
    }

    pub fn client(&self, address: &str) -> Result<FlightClient, FlightClientError> {
        let mut channels = match self.channels.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let channel = match channels.get(address) {
            Some(c) => c.clone(),
            None => {
                let uri = if address.contains("://") {
                    address.to_owned()
                } else {
                    format!("http://{address}")
                };
                let channel = Endpoint::from_shared(uri)
                    .map_err(|source| FlightClientError::Address {
                        address: address.to_owned(),
                        source,
                    })?
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(30))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(20))
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                channels.insert(address.to_owned(), channel.clone());
                channel
            }
        };
        Ok(FlightServiceClient::with_interceptor(channel, self.token.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE))
    }

    /// Forgets the channel of `address`, so the next call reconnects.
    pub fn forget(&self, address: &str) {
        if let Ok(mut g) = self.channels.lock() {
            g.remove(address);
        }
    }
}

/// Sends one batch with `meta` and waits for the writer's durable acknowledgement.
pub async fn put_batch(
    pool: &FlightPool,
    address: &str,
    meta: &PutMetadata,
    batch: RecordBatch,
) -> Result<PutAck, FlightClientError> {
    let mut client = pool.client(address)?;
    let encoded: Vec<FlightData> = FlightDataEncoderBuilder::new()
        .with_metadata(Bytes::from(meta.encode_to_vec()))
        .with_max_flight_data_size(MAX_MESSAGE_SIZE / 2)
        .build(futures::stream::iter([Ok(batch)]))
        .try_collect()
        .await
        .map_err(|source| FlightClientError::Encode {
            address: address.to_owned(),
            source,
        })?;
    let response = client
        .do_put(futures::stream::iter(encoded))
        .await
        .map_err(|status| FlightClientError::Rpc {
            address: address.to_owned(),
            status,
        })?;
    let mut results = response.into_inner();
    let first = results
        .next()
        .await
        .ok_or_else(|| FlightClientError::NoAck {
            address: address.to_owned(),
        })?
        .map_err(|status| FlightClientError::Rpc {
            address: address.to_owned(),
            status,
        })?;
    PutAck::decode(first.app_metadata).map_err(|source| FlightClientError::BadAck {
        address: address.to_owned(),
        source,
    })
}
