fn main() {
    print!("{}", tagbinder::api::crds_yaml());
}
