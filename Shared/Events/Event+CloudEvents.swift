import Models

extension TypeV1.Event {
    /// The event in the CloudEvents JSON format (structured mode, one JSON object): the
    /// context attributes `specversion`, `id`, `source`, `type`, `subject`, `time`,
    /// `datacontenttype` and `dataschema`, the extension attribute `cursor` (its place in the
    /// service's event log), and `data`, the data message as JSON. The same text is a line of
    /// `doorstep events tail` and the body of a webhook delivery
    /// (content type `application/cloudevents+json`).
    public var cloudEventJSON: String {
        let data = (try? JSONValue(parsing: dataJson)) ?? .string(dataJson)
        return JSONValue.object([
            ("specversion", .string(specVersion)), ("id", .string(id)), ("source", .string(source)),
            ("type", .string(type)), ("subject", .string(subject)), ("time", .string(time)),
            ("datacontenttype", .string(dataContentType)), ("dataschema", .string(dataSchema)),
            ("cursor", .string(cursor)), ("data", data),
        ]).text
    }
}
