import GWJSON
extension AdminAPI {
    func getConfig(_ req: Req) throws(OpFailure) -> Result { AdminAPI.notFound }
    func postConfig(_ req: Req) throws(OpFailure) -> Result { AdminAPI.notFound }
}
