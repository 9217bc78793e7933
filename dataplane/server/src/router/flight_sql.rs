//! Flight SQL on the router (port 50053): any Flight SQL client can list the
//! `spans` table and run SQL over its own tenant's spans. The tenant is the
//! caller's API key's when `tenancy.api_keys` is on (sent on the handshake
//! as basic auth with the key as the password, or as a bearer token on
//! every call), else the `x-scope-orgid` header, as on every other API.

use std::pin::Pin;

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTables, CommandStatementQuery, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::{Stream, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use signaldb_config::TenantId;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::client::QuerierClient;
use crate::api_keys::{AuthError, Tenants, bearer_of};
use crate::flight::MAX_MESSAGE_SIZE;
use crate::proto::{QueryKind, QueryTicket};

const CATALOG: &str = "signaldb";
const SCHEMA: &str = "public";
const TABLE: &str = "spans";

type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// What a statement ticket carries: the statement and whose it is.
#[derive(Debug, Serialize, Deserialize)]
struct StatementHandle {
    tenant: String,
    sql: String,
}

/// The Flight SQL service.
#[derive(Debug, Clone)]
pub struct FlightSql {
    queriers: QuerierClient,
    tenants: Tenants,
}

impl FlightSql {
    pub fn new(queriers: QuerierClient, tenants: Tenants) -> Self {
        Self { queriers, tenants }
    }

    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// The caller's tenant: its API key's (`authorization`, bearer or
    /// basic) when keys are required, else its `x-scope-orgid`.
    async fn tenant(&self, md: &MetadataMap) -> Result<TenantId, Status> {
        let text = |name: &str| md.get(name).map(|v| v.to_str().map_err(|_| ()));
        self.tenants
            .resolve(text("authorization"), text("x-scope-orgid"))
            .await
            .map_err(|e| match e {
                AuthError::Unauthenticated(m) => Status::unauthenticated(m),
                AuthError::Forbidden(m) => Status::permission_denied(m),
                AuthError::Unavailable(m) => Status::unavailable(m),
            })
    }

    fn info(
        cmd: impl ProstMessageExt,
        descriptor: FlightDescriptor,
        schema: &arrow_schema::Schema,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket {
            ticket: cmd.as_any().encode_to_vec().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    fn batch_stream(batch: RecordBatch) -> Response<FlightDataStream> {
        let stream = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter([Ok(batch)]))
            .map_err(|e| Status::internal(e.to_string()));
        Response::new(Box::pin(stream))
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        let mut response =
            Response::new(Box::pin(futures::stream::iter([Ok(response)])) as Pin<Box<dyn Stream<Item = _> + Send>>);
        if self.tenants.keys_required() {
            // Checks the key (basic auth with the key as the password, as
            // ADBC and JDBC send it, or bearer) and hands it back as the
            // bearer token the client sends on its next calls.
            self.tenant(request.metadata()).await?;
            let presented = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let bearer = bearer_of(presented)?;
            response.metadata_mut().insert(
                "authorization",
                bearer
                    .parse()
                    .map_err(|_| Status::unauthenticated("the API key is not a valid header value"))?,
            );
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let tenant = self.tenant(request.metadata()).await?;
        let handle = StatementHandle {
            tenant: tenant.to_string(),
            sql: query.query,
        };
        let handle = serde_json::to_vec(&handle).map_err(|e| Status::internal(e.to_string()))?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        // The result schema is only known once the query runs; clients read it
        // from the data stream.
        Self::info(ticket, request.into_inner(), &arrow_schema::Schema::empty())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let tenant = self.tenant(request.metadata()).await?;
        let handle: StatementHandle = serde_json::from_slice(&ticket.statement_handle)
            .map_err(|e| Status::invalid_argument(format!("undecodable statement handle: {e}")))?;
        if handle.tenant != tenant.as_str() {
            return Err(Status::permission_denied("this statement belongs to another tenant"));
        }
        let stream = self
            .queriers
            .do_get(QueryTicket {
                tenant: handle.tenant,
                kind: Some(QueryKind::Sql(handle.sql)),
            })
            .await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        // Even the fixed names are shown only to an authenticated caller.
        self.tenant(request.metadata()).await?;
        let schema = query.into_builder().schema();
        Self::info(query, request.into_inner(), &schema)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.tenant(request.metadata()).await?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        Ok(Self::batch_stream(
            b.build().map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        // Even the fixed names are shown only to an authenticated caller.
        self.tenant(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        Self::info(query, request.into_inner(), &schema)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.tenant(request.metadata()).await?;
        let mut b = query.into_builder();
        b.append(CATALOG, SCHEMA);
        Ok(Self::batch_stream(
            b.build().map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        // Even the fixed names are shown only to an authenticated caller.
        self.tenant(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        Self::info(query, request.into_inner(), &schema)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        self.tenant(request.metadata()).await?;
        let mut b = query.into_builder();
        b.append(CATALOG, SCHEMA, TABLE, "TABLE", &signaldb_schema::traces::schema())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::batch_stream(
            b.build().map_err(|e| Status::internal(e.to_string()))?,
        ))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
