//! The writer's Arrow Flight service (port 50051).

use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use arrow_array::RecordBatch;

use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::{Writer, WriterError};
use crate::flight::MAX_MESSAGE_SIZE;
use crate::proto::{BufferTicket, PutMetadata};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The gRPC status of each writer error.
impl From<WriterError> for Status {
    fn from(e: WriterError) -> Self {
        let msg = e.to_string();
        match e {
            WriterError::BadMetadata(_) | WriterError::BadSchema(_) => Status::invalid_argument(msg),
            WriterError::Draining => Status::unavailable(msg),
            WriterError::BufferFull { .. } => Status::resource_exhausted(msg),
            WriterError::Wal(signaldb_wal::Error::Full { .. }) => Status::resource_exhausted(msg),
            WriterError::Wal(_) | WriterError::Catalog(_) => Status::unavailable(msg),
            WriterError::Encode(_) | WriterError::Flush(_) => Status::internal(msg),
        }
    }
}

/// Flight front end of a [`Writer`].
#[derive(Debug, Clone)]
pub struct WriterFlight {
    writer: Writer,
}

impl WriterFlight {
    pub fn new(writer: Writer) -> Self {
        Self { writer }
    }

    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

#[tonic::async_trait]
impl FlightService for WriterFlight {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = BoxStream<FlightData>;
    type DoPutStream = BoxStream<PutResult>;
    type DoActionStream = BoxStream<arrow_flight::Result>;
    type ListActionsStream = BoxStream<ActionType>;
    type DoExchangeStream = BoxStream<FlightData>;

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        // arrow-ipc has panicked, instead of failing, on malformed IPC
        // (fuzzing found it in the writer's WAL decoder): should a put make
        // it panic, the put is refused and the connection and writer go on.
        let (meta, batches, received) = AssertUnwindSafe(read_put(request.into_inner()))
            .catch_unwind()
            .await
            .map_err(|_| Status::invalid_argument("malformed Arrow IPC message (the decoder panicked)"))??;
        let meta = meta.ok_or_else(|| {
            Status::invalid_argument("DoPut needs app_metadata with tenant, source, seq and part on its first message")
        })?;
        let ack = self.writer.put(meta, batches, Some(received)).await?;
        let result = PutResult {
            app_metadata: Bytes::from(ack.encode_to_vec()),
        };
        Ok(Response::new(Box::pin(futures::stream::once(
            async move { Ok(result) },
        ))))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("the writer needs no handshake"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("the writer lists no flights"))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("the writer serves no flight info"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("the writer serves no flight info"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("the writer serves no schemas"))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = BufferTicket::decode(request.into_inner().ticket)
            .map_err(|e| Status::invalid_argument(format!("undecodable buffer ticket: {e}")))?;
        let tenant = signaldb_config::TenantId::new(ticket.tenant.clone())
            .map_err(|e| Status::invalid_argument(format!("ticket tenant: {e}")))?;
        let selection = super::select::Selection::from_ticket(&ticket).map_err(Status::invalid_argument)?;
        let schema = selection
            .schema()
            .map_err(|e| Status::invalid_argument(format!("ticket columns: {e}")))?;
        let batches = self
            .writer
            .read_buffer(&tenant, &selection)
            .map_err(|e| Status::internal(format!("reading the buffer: {e}")))?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn do_action(&self, _request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("the writer has no actions"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("the writer has no exchanges"))
    }
}

/// The metadata and record batches of one `DoPut`, and the Arrow IPC
/// stream its messages make, as received (the writer logs that stream
/// instead of encoding the batches again).
async fn read_put(stream: Streaming<FlightData>) -> Result<(Option<PutMetadata>, Vec<RecordBatch>, Bytes), Status> {
    let stream = stream.map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s)));
    let mut decoder = FlightDataDecoder::new(stream);
    let mut meta: Option<PutMetadata> = None;
    let mut batches = Vec::new();
    let mut ipc = bytes::BytesMut::new();
    while let Some(item) = decoder.next().await {
        let item = item.map_err(|e| Status::invalid_argument(format!("undecodable Flight data: {e}")))?;
        if meta.is_none() && !item.inner.app_metadata.is_empty() {
            meta = Some(
                PutMetadata::decode(item.inner.app_metadata.clone())
                    .map_err(|e| Status::invalid_argument(format!("undecodable app_metadata: {e}")))?,
            );
        }
        match item.payload {
            DecodedPayload::Schema(_) => append_ipc_message(&mut ipc, &item.inner)?,
            DecodedPayload::RecordBatch(b) => {
                append_ipc_message(&mut ipc, &item.inner)?;
                batches.push(b);
            }
            DecodedPayload::None => {}
        }
    }
    Ok((meta, batches, ipc.freeze()))
}

/// Appends one Flight message to an Arrow IPC stream: the continuation
/// marker, the length of the header padded to 8 bytes, the header and its
/// padding, then exactly the body length the header declares (a body sent
/// longer is cut, one sent shorter padded), so that a replay reads every
/// message where this one ends.
fn append_ipc_message(ipc: &mut bytes::BytesMut, data: &FlightData) -> Result<(), Status> {
    use bytes::BufMut;
    let header = &data.data_header;
    let message = arrow_ipc::root_as_message(header)
        .map_err(|e| Status::invalid_argument(format!("undecodable Arrow IPC message header: {e}")))?;
    let body_len = usize::try_from(message.bodyLength())
        .map_err(|_| Status::invalid_argument(format!("Arrow IPC body length {}", message.bodyLength())))?;
    let body = &data.data_body[..body_len.min(data.data_body.len())];
    let padded = header.len().div_ceil(8) * 8;
    let len = i32::try_from(padded)
        .map_err(|_| Status::invalid_argument(format!("Flight message header of {} bytes", header.len())))?;
    ipc.reserve(8 + padded + body_len);
    ipc.put_u32_le(0xFFFF_FFFF);
    ipc.put_i32_le(len);
    ipc.put_slice(header);
    ipc.put_bytes(0, padded - header.len());
    ipc.put_slice(body);
    ipc.put_bytes(0, body_len - body.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The Flight messages of a put, framed as an IPC stream, decode as the
    /// writer's WAL replay decodes them, to the batches that were sent
    /// (split over several messages by the encoder's size limit).
    #[tokio::test]
    async fn flight_messages_framed_as_received_replay_to_the_same_batches() {
        let mut f = crate::loadgen::RequestFactory::new(3, 10, 10);
        let batch = signaldb_schema::traces::otlp_to_arrow(&f.request(2_000).resource_spans).unwrap();
        let messages: Vec<FlightData> = FlightDataEncoderBuilder::new()
            .with_max_flight_data_size(64 * 1024)
            .build(futures::stream::iter([Ok(batch.clone())]))
            .try_collect()
            .await
            .unwrap();
        assert!(messages.len() > 2, "a schema and several batch messages");
        let mut ipc = bytes::BytesMut::new();
        for (n, m) in messages.iter().enumerate() {
            let mut m = m.clone();
            // A sender's trailing bytes past the declared body are not logged.
            if n == 1 {
                let mut body = m.data_body.to_vec();
                body.extend_from_slice(&[7; 24]);
                m.data_body = Bytes::from(body);
            }
            append_ipc_message(&mut ipc, &m).unwrap();
        }
        let record = crate::proto::WriterWalRecord {
            meta: Some(PutMetadata::default()),
            ipc: ipc.freeze(),
        };
        let (_, replayed) = super::super::decode_record(&record.encode_to_vec()).unwrap();
        let replayed = arrow::compute::concat_batches(&batch.schema(), &replayed).unwrap();
        assert_eq!(replayed, batch);
    }
}
